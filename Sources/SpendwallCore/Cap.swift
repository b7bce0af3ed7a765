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

    public init(
        name: String,
        scope: CapScope,
        window: CapWindow,
        limitNanoUSD: NanoUSD? = nil,
        limitTokens: Int64? = nil,
        action: CapAction = .block,
        warnAt: Double = 0.8
    ) {
        self.name = name
        self.scope = scope
        self.window = window
        self.limitNanoUSD = limitNanoUSD
        self.limitTokens = limitTokens
        self.action = action
        self.warnAt = warnAt
    }
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
