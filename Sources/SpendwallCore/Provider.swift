/// The LLM providers Spendwall prices and forwards to.
public enum Provider: String, Sendable, Hashable, Codable, CaseIterable {
    case openai
    case anthropic
}

/// How spend reached the daemon.
public enum SpendPath: String, Sendable, Hashable, Codable, CaseIterable {
    case sdk
    case proxy
    case session
}

/// How a call ended, as stored on its ledger row.
public enum Outcome: String, Sendable, Hashable, Codable, CaseIterable {
    case ok
    case blocked
    case killed
    case disconnected
    case error
    case partial
    /// A reservation that was never reported and expired; charged at its reserved cost.
    case unreported
}
