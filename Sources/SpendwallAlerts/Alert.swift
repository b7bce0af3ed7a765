import Foundation
import SpendwallCore

/// One event on its way to a transport: the event's JSON as the event stream carries it
/// (`{"id", "kind", "time_ms", "data"}`) and how many like it the rate limit held back.
public struct Alert: Sendable, Hashable {
    public var kind: String
    public var event: String
    public var suppressed: Int

    public init(kind: String, event: String, suppressed: Int = 0) {
        self.kind = kind
        self.event = event
        self.suppressed = suppressed
    }

    var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(event.utf8))) as? [String: Any] ?? [:]
    }

    var data: [String: Any] { object["data"] as? [String: Any] ?? [:] }

    /// The key the rate limit counts by: the kind and what the event is about (the cap and its
    /// window key; the kill switch scope; the file; the period and provider). Approval requests
    /// are never held back: each waits for a person.
    public var rateLimitKey: String? {
        let d = data
        switch kind {
        case "CapAlert", "CapBlocked":
            let cap = d["cap"] as? [String: Any] ?? [:]
            return
                "\(kind)|\(cap["name"] as? String ?? "?")|\(cap["key"] as? String ?? "")|\(cap["window"] as? String ?? "")"
        case "KillSwitch":
            return "\(kind)|\(Self.compact(d["scope"]))|\(d["on"] as? Bool ?? false)"
        case "ConfigError":
            return "\(kind)|\(d["file"] as? String ?? "")|\(d["message"] as? String ?? "")"
        case "ReconciliationDrift":
            return
                "\(kind)|\(d["period"] as? String ?? "")|\(d["provider"] as? String ?? "")|\(d["source"] as? String ?? "")"
        default:
            return nil
        }
    }

    static func compact(_ value: Any?) -> String {
        guard let value, JSONSerialization.isValidJSONObject(value),
            let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
        else { return "\(value ?? "")" }
        return String(decoding: data, as: UTF8.self)
    }

    /// A one-line summary for a subject or a header.
    public var title: String {
        let d = data
        let cap = d["cap"] as? [String: Any]
        let capName = cap?["name"] as? String ?? "?"
        switch kind {
        case "CapAlert":
            return (d["exceeded"] as? Bool ?? false)
                ? "Cap \(capName) passed its limit" : "Cap \(capName) crossed its warning line"
        case "CapBlocked": return "Cap \(capName) blocked a call"
        case "ApprovalRequested":
            return
                "A call waits for approval (\(d["cap"] as? String ?? "?"), \(Money.format(int(d["estimated_nanousd"]) ?? 0)))"
        case "KillSwitch":
            return "Kill switch \(Self.scopeText(d["scope"])) turned \((d["on"] as? Bool ?? false) ? "on" : "off")"
        case "ConfigError": return "Configuration error in \(d["file"] as? String ?? "a file")"
        case "ReconciliationDrift":
            return
                "\(d["provider"] as? String ?? "?") billed \(Money.format(int(d["billed_nanousd"]) ?? 0)) for \(d["period"] as? String ?? "?"); the ledger saw \(Money.format(int(d["ledger_nanousd"]) ?? 0))"
        case "AlertTest": return "Spendwall test alert"
        default: return kind
        }
    }

    /// Label and value pairs for the body: cap, app, agent, spent/limit and the rest.
    public var fields: [(String, String)] {
        let d = data
        var out: [(String, String)] = []
        let call = d["call"] as? [String: Any]
        if let cap = d["cap"] as? [String: Any] {
            out.append(
                (
                    "Cap",
                    "\(cap["name"] as? String ?? "?") (\(cap["window"] as? String ?? "?"), \(cap["action"] as? String ?? "?"))"
                ))
            let spent = Money.format(int(cap["spent_nanousd"]) ?? 0)
            let limit = int(cap["limit_nanousd"]).map(Money.format) ?? "no limit"
            out.append(("Spent / limit", "\(spent) / \(limit)"))
        } else if let cap = d["cap"] as? String {
            out.append(("Cap", cap))
        }
        if let app = (call?["app"] ?? d["app"]) as? String { out.append(("App", app)) }
        if let agent = (call?["agent"] ?? d["agent"]) as? String { out.append(("Agent", agent)) }
        if let model = (call?["model"] ?? d["model"]) as? String { out.append(("Model", model)) }
        if let reason = d["reason"] as? String { out.append(("Reason", reason)) }
        if let message = d["message"] as? String { out.append(("Message", message)) }
        if kind == "ReconciliationDrift" {
            out.append(("Drift", Money.format(int(d["drift_nanousd"]) ?? 0)))
            if let source = d["source"] as? String { out.append(("Source", source)) }
        }
        if kind == "KillSwitch", let by = d["by"] as? [String: Any], let exe = by["exe"] as? String {
            out.append(("By", exe))
        }
        if suppressed > 0 {
            out.append(("Held back", "\(suppressed) more like this since the last alert (rate limit)"))
        }
        return out
    }

    var timeMS: Int64 { int(object["time_ms"]) ?? 0 }

    static func scopeText(_ value: Any?) -> String {
        guard let scope = value as? [String: Any] else { return "global" }
        if let kind = scope["kind"] as? String {
            if kind == "global" { return "global" }
            return "\(kind) \(scope["value"] as? String ?? "")"
        }
        return compact(scope)
    }
}

func int(_ value: Any?) -> Int64? {
    switch value {
    case let n as NSNumber: return n.int64Value
    case let s as String: return Int64(s)
    default: return nil
    }
}
