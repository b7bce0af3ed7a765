import SpendwallCore

/// The policy engine's answer to a check.
public enum CheckDecision: Sendable {
    /// The call may go ahead; its worst-case cost is reserved.
    case allow(Reservation)
    /// A `block` cap would be exceeded; nothing is reserved.
    case block(CapStatus, reason: String)
    /// A kill switch covers the call; nothing is reserved.
    case killed(KillScope)
    /// An `approve` cap would be exceeded: a person must decide. Nothing is reserved; once
    /// approved, the call is checked again with the cap in `approved`.
    case approvalRequired(CapStatus, reason: String)
}

/// A cap budget that crossed its `warn_at` fraction (or, for an `alert` cap, its limit).
public struct CapWarning: Sendable, Hashable {
    public var status: CapStatus
    /// True when the limit itself is passed (only `alert` caps let a call pass it).
    public var exceeded: Bool
}

/// One cap budget's state: what is spent and reserved against its limits.
public struct CapStatus: Sendable, Hashable {
    public var cap: Cap
    public var key: String
    public var spentNanoUSD: NanoUSD
    public var reservedNanoUSD: NanoUSD
    public var spentTokens: Int64
    public var reservedTokens: Int64
    public var resetsAtMS: Int64?

    /// Dollars left before the limit (nil when the cap has no dollar limit); never negative.
    public var remainingNanoUSD: NanoUSD? {
        cap.limitNanoUSD.map { max(0, $0 - spentNanoUSD - reservedNanoUSD) }
    }

    /// Tokens left before the token limit (nil when there is none); never negative.
    public var remainingTokens: Int64? {
        cap.limitTokens.map { max(0, $0 - spentTokens - reservedTokens) }
    }

    /// The larger of the dollar and token fractions used, spent plus reserved.
    public var used: Double {
        var fraction = 0.0
        if let limit = cap.limitNanoUSD, limit > 0 {
            fraction = max(fraction, Double(spentNanoUSD + reservedNanoUSD) / Double(limit))
        }
        if let limit = cap.limitTokens, limit > 0 {
            fraction = max(fraction, Double(spentTokens + reservedTokens) / Double(limit))
        }
        return fraction
    }
}

/// Every cap's budgets at one moment.
public struct PolicySnapshot: Sendable {
    public var caps: [(cap: Cap, keys: [CapStatus])]
    public var reservationsInFlight: Int
}
