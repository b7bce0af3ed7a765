import SpendwallCore
import SpendwallPricing

/// Budget set aside by an allowed check until its report settles it to the real cost.
public struct Reservation: Sendable, Hashable {
    public var id: String
    public var attributes: CallAttributes
    public var peer: PeerIdentity
    public var path: SpendPath
    public var strict: Bool
    public var estimate: CallEstimate
    public var price: ModelPrice
    public var priced: Bool
    /// The worst case: what the call can cost at most (charged if it is never reported).
    public var reservedNanoUSD: NanoUSD
    public var reservedTokens: Int64
    public var createdAtMS: Int64
    public var expiresAtMS: Int64
    /// The cap budgets this reservation holds, by cap name and budget key.
    public var holds: [CapHold]
    /// Budgets this check pushed over their warning line (not saved across restarts).
    public var warnings: [CapWarning] = []
    /// The pre-approval this call draws on, if any: caps it covers were not reserved again.
    public var drawsFrom: String?

    public init(
        id: String, attributes: CallAttributes, peer: PeerIdentity, path: SpendPath, strict: Bool,
        estimate: CallEstimate, price: ModelPrice, priced: Bool, reservedNanoUSD: NanoUSD,
        reservedTokens: Int64, createdAtMS: Int64, expiresAtMS: Int64, holds: [CapHold]
    ) {
        self.id = id
        self.attributes = attributes
        self.peer = peer
        self.path = path
        self.strict = strict
        self.estimate = estimate
        self.price = price
        self.priced = priced
        self.reservedNanoUSD = reservedNanoUSD
        self.reservedTokens = reservedTokens
        self.createdAtMS = createdAtMS
        self.expiresAtMS = expiresAtMS
        self.holds = holds
    }
}

/// One cap budget a reservation draws on.
public struct CapHold: Sendable, Hashable {
    public var cap: String
    public var key: String
    /// What this reservation holds in that budget: the worst case, or less for a cap with
    /// `reserve = "expected"`.
    public var reservedNanoUSD: NanoUSD
    public var reservedTokens: Int64
    /// For a team cap in team mode: the team period whose lease this hold draws on.
    public var leasePeriodMS: Int64?

    public init(
        cap: String, key: String, reservedNanoUSD: NanoUSD = 0, reservedTokens: Int64 = 0, leasePeriodMS: Int64? = nil
    ) {
        self.cap = cap
        self.key = key
        self.reservedNanoUSD = reservedNanoUSD
        self.reservedTokens = reservedTokens
        self.leasePeriodMS = leasePeriodMS
    }
}

/// A reservation settled to its real usage.
public struct Settlement: Sendable {
    public var reservation: Reservation
    public var usage: Usage
    public var costNanoUSD: NanoUSD
    public var settledAtMS: Int64
    /// Budgets the real cost pushed over their warning line.
    public var warnings: [CapWarning] = []
}
