/// Which calls a cap covers.
///
/// String scopes take a ``ScopePattern``: an exact value, a prefix ending in `*`
/// (one shared budget for every match), or `*` alone, which gives each distinct value its
/// own budget (e.g. `{ session = "*" }`: every session is capped separately).
public enum CapScope: Sendable, Hashable, CustomStringConvertible {
    case global
    case agent(ScopePattern)
    case app(ScopePattern)
    case session(ScopePattern)
    case model(ScopePattern)
    case tag(key: String, value: ScopePattern)

    /// The budget key a call falls under, or nil when the cap does not cover it.
    public func key(for call: CallAttributes) -> String? {
        switch self {
        case .global: return "*"
        case .agent(let pattern): return call.agent.flatMap(pattern.key(for:))
        case .app(let pattern): return pattern.key(for: call.app)
        case .session(let pattern): return call.session.flatMap(pattern.key(for:))
        case .model(let pattern): return pattern.key(for: call.model)
        case .tag(let name, let pattern): return call.tags[name].flatMap(pattern.key(for:))
        }
    }

    /// The scope as it is written in caps.toml, e.g. `agent = "reviewer"`.
    public var description: String {
        switch self {
        case .global: return "global = true"
        case .agent(let p): return "agent = \"\(p)\""
        case .app(let p): return "app = \"\(p)\""
        case .session(let p): return "session = \"\(p)\""
        case .model(let p): return "model = \"\(p)\""
        case .tag(let key, let p): return "tag = { \(key) = \"\(p)\" }"
        }
    }

    /// The scope as a JSON-ready dictionary: `["agent": "reviewer"]`.
    public var dictionary: [String: String] {
        switch self {
        case .global: return ["global": "true"]
        case .agent(let p): return ["agent": p.description]
        case .app(let p): return ["app": p.description]
        case .session(let p): return ["session": p.description]
        case .model(let p): return ["model": p.description]
        case .tag(let key, let p): return ["tag": "\(key)=\(p)"]
        }
    }
}

/// A value pattern in a cap scope.
public enum ScopePattern: Sendable, Hashable, CustomStringConvertible {
    /// `*`: every value, each with its own budget.
    case each
    /// `abc*`: every value starting with the prefix, sharing one budget.
    case prefix(String)
    /// An exact value.
    case exact(String)

    public init(_ text: String) {
        if text == "*" {
            self = .each
        } else if text.hasSuffix("*") {
            self = .prefix(String(text.dropLast()))
        } else {
            self = .exact(text)
        }
    }

    func key(for value: String) -> String? {
        switch self {
        case .each: return value
        case .prefix(let prefix): return value.hasPrefix(prefix) ? prefix + "*" : nil
        case .exact(let exact): return value == exact ? exact : nil
        }
    }

    public var description: String {
        switch self {
        case .each: return "*"
        case .prefix(let p): return p + "*"
        case .exact(let e): return e
        }
    }
}

extension CapScope {
    /// Parses the one-line form the CLI and the panel use: `global`, `agent=A`, `app=X`,
    /// `session=S`, `model=M` or `tag=KEY=VALUE` (a value of `*` gives each one its own budget).
    public init?(flag text: String) {
        if text == "global" {
            self = .global
            return
        }
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else { return nil }
        switch parts[0] {
        case "agent": self = .agent(ScopePattern(parts[1]))
        case "app": self = .app(ScopePattern(parts[1]))
        case "session": self = .session(ScopePattern(parts[1]))
        case "model": self = .model(ScopePattern(parts[1]))
        case "tag":
            let tag = parts[1].split(separator: "=", maxSplits: 1).map(String.init)
            guard tag.count == 2, !tag[0].isEmpty, !tag[1].isEmpty else { return nil }
            self = .tag(key: tag[0], value: ScopePattern(tag[1]))
        default: return nil
        }
    }
}
