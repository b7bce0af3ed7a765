/// Tunables of the policy engine.
public struct PolicySettings: Sendable, Hashable {
    /// How long a reservation waits for its report before it is charged as `unreported`.
    public var reservationTTLMS: Int64

    public init(reservationTTLMS: Int64 = 600_000) {
        self.reservationTTLMS = reservationTTLMS
    }
}
