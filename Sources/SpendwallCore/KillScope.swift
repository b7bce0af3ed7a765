/// What a kill switch stops: every call, or the calls of one agent, app or session.
public enum KillScope: Sendable, Hashable, CustomStringConvertible {
    case global
    case agent(String)
    case app(String)
    case session(String)

    /// Builds a scope from its wire form (`kind`, and `value` for all but global).
    public init?(kind: String, value: String?) {
        switch (kind, value) {
        case ("global", _): self = .global
        case ("agent", let value?) where !value.isEmpty: self = .agent(value)
        case ("app", let value?) where !value.isEmpty: self = .app(value)
        case ("session", let value?) where !value.isEmpty: self = .session(value)
        default: return nil
        }
    }

    public var kind: String {
        switch self {
        case .global: "global"
        case .agent: "agent"
        case .app: "app"
        case .session: "session"
        }
    }

    public var value: String? {
        switch self {
        case .global: nil
        case .agent(let value), .app(let value), .session(let value): value
        }
    }

    /// True when a call with these attributes is in this scope.
    public func covers(_ call: CallAttributes) -> Bool {
        switch self {
        case .global: true
        case .agent(let agent): call.agent == agent
        case .app(let app): call.app == app
        case .session(let session): call.session == session
        }
    }

    public var description: String { value.map { "\(kind) \"\($0)\"" } ?? "global" }
}
