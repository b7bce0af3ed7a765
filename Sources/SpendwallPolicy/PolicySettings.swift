/// Tunables of the policy engine.
public struct PolicySettings: Sendable, Hashable {
    /// How long a reservation waits for its report before it is charged as `unreported`.
    public var reservationTTLMS: Int64
    /// Team mode: team caps draw on budget leases (nil: team caps act as this machine's own).
    public var team: TeamPolicy?

    public init(reservationTTLMS: Int64 = 600_000, team: TeamPolicy? = nil) {
        self.reservationTTLMS = reservationTTLMS
        self.team = team
    }
}
