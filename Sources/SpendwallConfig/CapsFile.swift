import SpendwallCore
import TOMLKit

/// caps.toml: the spending caps.
public enum CapsFile {
    /// Loads caps.toml from the config directory; a missing file means no caps.
    public static func load(paths: SpendwallPaths) throws(ConfigError) -> [Cap] {
        guard let text = try ConfigFiles.read(paths.configFile("caps.toml")) else { return [] }
        return try parse(text)
    }

    /// Parses and validates the text of a caps.toml.
    public static func parse(_ text: String, file: String = "caps.toml") throws(ConfigError) -> [Cap] {
        let source = try TOMLSource(file: file, text: text)
        for key in source.table.keys where key != "cap" {
            throw source.error("unknown key \(key): caps are written as [[cap]] tables", line: source.line(ofKey: key))
        }
        guard let entries = source.table["cap"] else { return [] }
        guard let array = entries.array else {
            throw source.error("cap must be written as [[cap]] tables", line: source.line(ofKey: "cap"))
        }
        var caps: [Cap] = []
        var names: Set<String> = []
        for (index, element) in array.enumerated() {
            func fail(_ message: String, key: String? = nil) -> ConfigError {
                source.error(message, line: source.line(ofArrayTable: "cap", index: index, key: key))
            }
            guard let table = element.table else { throw fail("each cap must be a table") }
            let allowed = [
                "name", "scope", "window", "limit_usd", "limit_tokens", "action", "warn_at", "reserve",
                "reserve_percentile",
            ]
            for key in table.keys where !allowed.contains(key) {
                throw fail("unknown key \(key) (known: \(allowed.joined(separator: ", ")))", key: key)
            }
            guard let name = table["name"]?.string, !name.isEmpty else {
                throw fail("every cap needs a name = \"...\"", key: "name")
            }
            guard names.insert(name).inserted else { throw fail("two caps are named \"\(name)\"", key: "name") }
            let (scope, team) = try parseTeamScope(
                table["scope"], fail: { fail("cap \"\(name)\": \($0)", key: "scope") })
            guard let windowText = table["window"]?.string else {
                throw fail(
                    "cap \"\(name)\": window = \"1h\" | \"1d\" | \"7d\" | \"30d\" | \"day\" | \"week\" | \"month\" is required",
                    key: "window")
            }
            guard let window = CapWindow(parsing: windowText) else {
                throw fail(
                    "cap \"\(name)\": window \"\(windowText)\" is not a duration (1h, 1d, 7d, 30d) or day, week, month",
                    key: "window")
            }
            var limit: NanoUSD?
            if let value = table["limit_usd"] {
                guard let dollars = value.number, let nanos = Money.nanos(fromDollars: dollars) else {
                    throw fail("cap \"\(name)\": limit_usd must be a non-negative number", key: "limit_usd")
                }
                limit = nanos
            }
            var tokens: Int64?
            if let value = table["limit_tokens"] {
                guard let count = value.int, count >= 0 else {
                    throw fail("cap \"\(name)\": limit_tokens must be a non-negative whole number", key: "limit_tokens")
                }
                tokens = Int64(count)
            }
            guard limit != nil || tokens != nil else {
                throw fail("cap \"\(name)\": set limit_usd and/or limit_tokens")
            }
            if team && (limit == nil || tokens != nil) {
                throw fail(
                    "cap \"\(name)\": a team cap takes limit_usd only (leases are slices of dollars); drop limit_tokens",
                    key: tokens != nil ? "limit_tokens" : "scope")
            }
            var action = CapAction.block
            if let value = table["action"] {
                guard let text = value.string else {
                    throw fail("cap \"\(name)\": action must be a string", key: "action")
                }
                guard let parsed = CapAction(rawValue: text) else {
                    throw fail(
                        "cap \"\(name)\": action must be \"block\", \"alert\" or \"approve\", not \"\(text)\"",
                        key: "action")
                }
                action = parsed
            }
            var warnAt = 0.8
            if let value = table["warn_at"] {
                guard let fraction = value.number, fraction >= 0, fraction <= 1 else {
                    throw fail("cap \"\(name)\": warn_at must be a fraction from 0 to 1", key: "warn_at")
                }
                warnAt = fraction
            }
            var reserve = ReserveMode.worstCase
            if let value = table["reserve"] {
                guard let text = value.string, let parsed = ReserveMode(rawValue: text) else {
                    throw fail(
                        "cap \"\(name)\": reserve must be \"worst_case\" or \"expected\"", key: "reserve")
                }
                reserve = parsed
            }
            var percentile = 0.99
            if let value = table["reserve_percentile"] {
                guard let fraction = value.number, fraction >= 0.5, fraction <= 1 else {
                    throw fail(
                        "cap \"\(name)\": reserve_percentile must be a fraction from 0.5 to 1 (0.99 = p99)",
                        key: "reserve_percentile")
                }
                guard reserve == .expected else {
                    throw fail(
                        "cap \"\(name)\": reserve_percentile applies only with reserve = \"expected\"",
                        key: "reserve_percentile")
                }
                percentile = fraction
            }
            caps.append(
                Cap(
                    name: name, scope: scope, window: window, limitNanoUSD: limit, limitTokens: tokens, action: action,
                    warnAt: warnAt, reserve: reserve, reservePercentile: percentile, team: team))
        }
        return caps
    }

    /// A scope that may carry `team = true`: `{ team = true }` alone is the whole team's
    /// spend; beside another scope (`{ tag = { repo = "*" }, team = true }`) it shares that
    /// scope's budgets across the team.
    static func parseTeamScope(_ value: TOMLValueConvertible?, fail: (String) -> ConfigError) throws(ConfigError)
        -> (CapScope, Bool)
    {
        guard let table = value?.table, let flag = table["team"] else {
            return (try parseScope(value, fail: fail), false)
        }
        guard flag.bool == true else {
            throw fail("team must be true (leave it out for a cap of this machine only)")
        }
        if table.keys.count == 1 { return (.global, true) }
        let rest = TOMLTable()
        for key in table.keys where key != "team" { rest[key] = table[key]! }
        return (try parseScope(rest, fail: fail), true)
    }

    static func parseScope(_ value: TOMLValueConvertible?, fail: (String) -> ConfigError) throws(ConfigError)
        -> CapScope
    {
        let usage =
            "scope must be one of { agent = \"A\" }, { app = \"X\" }, { session = \"S\" }, { model = \"M\" }, { tag = { key = \"value\" } }, { global = true }, { team = true }, each optionally with team = true"
        guard let table = value?.table, table.keys.count == 1, let key = table.keys.first else { throw fail(usage) }
        let inner = table[key]
        switch key {
        case "global":
            guard inner?.bool == true else { throw fail("scope { global = true } is the only global form") }
            return .global
        case "agent", "app", "session", "model":
            guard let text = inner?.string, !text.isEmpty else { throw fail("scope \(key) must be a non-empty string") }
            let pattern = ScopePattern(text)
            switch key {
            case "agent": return .agent(pattern)
            case "app": return .app(pattern)
            case "session": return .session(pattern)
            default: return .model(pattern)
            }
        case "tag":
            guard let tag = inner?.table, tag.keys.count == 1, let name = tag.keys.first,
                let text = tag[name]?.string, !text.isEmpty
            else { throw fail("scope tag must name one key and value: { tag = { customer = \"acme\" } }") }
            return .tag(key: name, value: ScopePattern(text))
        default:
            throw fail(usage)
        }
    }
}
