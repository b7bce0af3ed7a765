/// A spending cap from caps.toml: which calls it covers, over what window, and what happens
/// when it is reached.
public struct Cap: Sendable, Hashable {
    public var name: String
    public var scope: CapScope
    public var window: CapWindow
    /// The dollar limit in nano-USD, if any.
    public var limitNanoUSD: NanoUSD?
    /// The token limit (all billed kinds), if any.
    public var limitTokens: Int64?
    public var action: CapAction
    /// Fraction of the limit at which a warning is raised (0...1).
    public var warnAt: Double
    /// What a check sets aside in this cap until its report comes.
    public var reserve: ReserveMode
    /// For `expected` reservations: the percentile of recent output tokens reserved (0.5...1).
    public var reservePercentile: Double
    /// A team cap: its limit is shared by every machine of the team (`team = true` in its
    /// scope) and held through budget leases from the team database.
    public var team: Bool

    public init(
        name: String,
        scope: CapScope,
        window: CapWindow,
        limitNanoUSD: NanoUSD? = nil,
        limitTokens: Int64? = nil,
        action: CapAction = .block,
        warnAt: Double = 0.8,
        reserve: ReserveMode = .worstCase,
        reservePercentile: Double = 0.99,
        team: Bool = false
    ) {
        self.name = name
        self.scope = scope
        self.window = window
        self.limitNanoUSD = limitNanoUSD
        self.limitTokens = limitTokens
        self.action = action
        self.warnAt = warnAt
        self.reserve = reserve
        self.reservePercentile = reservePercentile
        self.team = team
    }
}

/// How much a check reserves in a cap before the call's real cost is known.
public enum ReserveMode: String, Sendable, Hashable, CaseIterable {
    /// The input estimate plus the full output limit at the output price: the cap is never
    /// exceeded (as far as the input estimate holds), but parallel calls hold far more than
    /// they will spend.
    case worstCase = "worst_case"
    /// The input estimate plus a high percentile of the output this agent and model actually
    /// produced recently (the worst case until 20 calls are known): more calls fit, and the cap
    /// can be passed by at most the output the calls in flight produce beyond that percentile.
    case expected
}

/// What a cap does when a call would exceed it.
public enum CapAction: String, Sendable, Hashable, CaseIterable {
    /// Allow the call and report it (warnings and alerts).
    case alert
    /// Refuse the call before it reaches the provider.
    case block
    /// Hold the call until a person approves or denies it (or the approval times out).
    case approve
}
