import Foundation
import MCP
import SpendwallClient
import SpendwallCore

/// The tools `spendwall mcp` offers an agent, each answered from the daemon over its socket.
/// Descriptions are written for a model to read: what the tool tells it and when to use it.
struct BudgetTools: Sendable {
    let client: DaemonClient
    /// The agent name from `--agent`, when the server was started with one.
    let agent: String?
    /// The process that launched the server (the agent itself), for its app label.
    let parentPID: Int32

    static let tools: [Tool] = [
        Tool(
            name: "get_remaining_budget",
            description: """
                How much you may still spend on LLM calls: every spending cap that applies to you, with what is \
                spent, what is reserved by calls in flight, the limit, what remains, and when the window resets; \
                also whether a kill switch has stopped your calls, and your open pre-approvals. Call it before \
                planning expensive work.
                """,
            inputSchema: schema(["agent": stringProperty("Your agent name, if the server was not started with one.")]),
            annotations: .init(readOnlyHint: true)),
        Tool(
            name: "estimate_cost",
            description: """
                What an LLM call would cost before you make it: input tokens, the worst-case output (max_tokens), \
                and the dollar range from input-only to the full output limit. Give a model and either a request \
                body (the JSON you would send) or an input token count.
                """,
            inputSchema: schema(
                [
                    "model": stringProperty("The model name, e.g. gpt-4o or claude-sonnet-4-5."),
                    "request": .object([
                        "type": .string("object"),
                        "description": .string("The request body you would send (chat messages, tools, max_tokens)."),
                    ]),
                    "input_tokens": integerProperty("Input tokens, when you know them instead of a request body."),
                    "max_output_tokens": integerProperty("The output limit (default: the request's max_tokens)."),
                ], required: ["model"]),
            annotations: .init(readOnlyHint: true)),
        Tool(
            name: "request_preapproval",
            description: """
                Reserve a dollar amount for a planned piece of work, with the reason. Answered "granted" (a \
                pre-approval id and its expiry: your calls then draw on it instead of reserving again), "denied" \
                (a cap or kill switch refuses it; the reason says which), or held until a person approves it. \
                Release what you do not use with release_preapproval.
                """,
            inputSchema: schema(
                [
                    "amount_usd": .object([
                        "type": .string("number"), "exclusiveMinimum": .int(0),
                        "description": .string("Dollars to set aside, e.g. 2.50."),
                    ]),
                    "reason": stringProperty("What the money is for, in a sentence a person can judge."),
                    "ttl": stringProperty("How long to hold it, like 30m or 2h (default 1h, at most 24h)."),
                    "agent": stringProperty("Your agent name, if the server was not started with one."),
                ], required: ["amount_usd", "reason"]),
            annotations: .init(readOnlyHint: false, destructiveHint: false)),
        Tool(
            name: "release_preapproval",
            description: "Give back what is left of a pre-approval you no longer need.",
            inputSchema: schema(
                ["preapproval_id": stringProperty("The id request_preapproval returned.")],
                required: ["preapproval_id"]),
            annotations: .init(readOnlyHint: false, destructiveHint: false)),
        Tool(
            name: "list_recent_spend",
            description: """
                Your most recent LLM calls (model, tokens, cost, outcome) and their totals, newest first.
                """,
            inputSchema: schema([
                "agent": stringProperty("Your agent name, if the server was not started with one."),
                "limit": .object([
                    "type": .string("integer"), "minimum": .int(1), "maximum": .int(200),
                    "description": .string("How many calls (default 20)."),
                ]),
            ]),
            annotations: .init(readOnlyHint: true)),
    ]

    // MARK: Calls

    func call(_ name: String, _ arguments: [String: Value]) async -> CallTool.Result {
        do {
            switch name {
            case "get_remaining_budget": return try await remainingBudget(arguments)
            case "estimate_cost": return try await estimateCost(arguments)
            case "request_preapproval": return try await requestPreapproval(arguments)
            case "release_preapproval": return try await releasePreapproval(arguments)
            case "list_recent_spend": return try await recentSpend(arguments)
            default: return Self.failure("there is no tool \(name)")
            }
        } catch let error as ToolFailure {
            return Self.failure(error.message)
        } catch let error as SpendwallError where error.code == .daemonUnreachable {
            return Self.failure(
                "the Spendwall daemon is not running, so spend cannot be checked: \(error.message)")
        } catch {
            return Self.failure("the Spendwall daemon could not answer: \(error)")
        }
    }

    private func remainingBudget(_ arguments: [String: Value]) async throws -> CallTool.Result {
        var query = "pid=\(parentPID)"
        if let agent = try agentName(arguments) { query += "&agent=" + Self.escape(agent) }
        let answer = try await get("/v1/budget?" + query)
        var lines: [String] = []
        if answer["killed"] as? Bool == true {
            let switches = (answer["kill_switches"] as? [String] ?? []).joined(separator: ", ")
            lines.append("STOPPED: a kill switch is on (\(switches)); every call you make will be refused.")
        }
        let caps = answer["caps"] as? [[String: Any]] ?? []
        if caps.isEmpty { lines.append("No spending cap applies to you.") }
        for cap in caps {
            let name = cap["name"] as? String ?? "?"
            let window = cap["window"] as? String ?? "?"
            var line = "cap \(name) (\(window), \(cap["action"] as? String ?? "block")):"
            if let limit = Self.int(cap["limit_nanousd"]) {
                line += " \(Money.format(Self.int(cap["remaining_nanousd"]) ?? 0)) left of \(Money.format(limit))"
                line += " (spent \(Money.format(Self.int(cap["spent_nanousd"]) ?? 0))"
                line += ", reserved \(Money.format(Self.int(cap["reserved_nanousd"]) ?? 0)))"
            }
            if let limit = Self.int(cap["limit_tokens"]) {
                line += " \(Self.int(cap["remaining_tokens"]) ?? 0) of \(limit) tokens left"
            }
            if let reset = Self.int(cap["resets_at_ms"]) {
                line += "; resets \(Self.time(reset))"
            } else {
                line += "; rolling window"
            }
            lines.append(line)
        }
        for p in answer["preapprovals"] as? [[String: Any]] ?? [] {
            lines.append(
                "pre-approval \(p["id"] as? String ?? "?"): \(Money.format(Self.int(p["remaining_nanousd"]) ?? 0)) left"
                    + " of \(Money.format(Self.int(p["amount_nanousd"]) ?? 0)), until \(Self.time(Self.int(p["expires_at_ms"]) ?? 0))"
            )
        }
        return Self.success(lines.joined(separator: "\n"), answer)
    }

    private func estimateCost(_ arguments: [String: Value]) async throws -> CallTool.Result {
        guard let model = arguments["model"]?.stringValue, !model.isEmpty else {
            throw ToolFailure("model is required, e.g. \"gpt-4o\"")
        }
        var body: [String: Any] = ["model": model]
        if let request = arguments["request"] {
            guard case .object = request else { throw ToolFailure("request must be a JSON object (a request body)") }
            body["request"] = try Self.foundation(request)
        }
        for key in ["input_tokens", "max_output_tokens"] {
            guard let value = arguments[key] else { continue }
            guard let count = value.intValue ?? value.doubleValue.flatMap({ $0.rounded() == $0 ? Int($0) : nil }),
                count >= 0
            else { throw ToolFailure("\(key) must be a whole number of tokens, 0 or more") }
            body[key] = count
        }
        guard body["request"] != nil || body["input_tokens"] != nil else {
            throw ToolFailure("give either request (the body you would send) or input_tokens")
        }
        let answer = try await post("/v1/estimate", body)
        guard answer["priced"] as? Bool == true else {
            throw ToolFailure(
                "unknown model \(model): Spendwall has no price for it (`spendwall pricing ls` lists the models it knows)"
            )
        }
        let low = Self.int(answer["min_cost_nanousd"]) ?? 0
        let high = Self.int(answer["max_cost_nanousd"]) ?? 0
        let exact = answer["exact"] as? Bool == true ? "exact" : "estimated"
        let text =
            "\(model): \(Self.int(answer["input_tokens"]) ?? 0) input tokens (\(exact)), up to "
            + "\(Self.int(answer["max_output_tokens"]) ?? 0) output tokens: \(Money.format(low)) to \(Money.format(high))"
        return Self.success(text, answer)
    }

    private func requestPreapproval(_ arguments: [String: Value]) async throws -> CallTool.Result {
        guard let agent = try agentName(arguments) else {
            throw ToolFailure(
                "name the agent: pass agent, or start the server with `spendwall mcp --agent NAME`; calls draw on a"
                    + " pre-approval by agent name")
        }
        guard let amount = arguments["amount_usd"].flatMap({ $0.doubleValue ?? $0.intValue.map(Double.init) }) else {
            throw ToolFailure("amount_usd is required: the dollars to set aside, e.g. 2.5")
        }
        guard amount > 0, amount.isFinite else { throw ToolFailure("amount_usd must be more than zero") }
        guard let reason = arguments["reason"]?.stringValue, !reason.trimmingCharacters(in: .whitespaces).isEmpty
        else { throw ToolFailure("reason is required: say what the money is for") }
        var body: [String: Any] = ["agent": agent, "amount_usd": amount, "reason": reason, "pid": Int(parentPID)]
        if let ttl = arguments["ttl"] {
            guard let text = ttl.stringValue else { throw ToolFailure("ttl must be a duration like \"30m\"") }
            body["ttl"] = text
        }
        let answer = try await post("/v1/preapprovals", body)
        let decision = answer["decision"] as? String ?? "?"
        if decision == "granted", let p = answer["preapproval"] as? [String: Any] {
            return Self.success(
                "granted: pre-approval \(p["id"] as? String ?? "?") holds \(Money.format(Self.int(p["amount_nanousd"]) ?? 0))"
                    + " until \(Self.time(Self.int(p["expires_at_ms"]) ?? 0)); your calls draw on it.", answer)
        }
        return Self.success("\(decision): \(answer["reason"] as? String ?? "")", answer)
    }

    private func releasePreapproval(_ arguments: [String: Value]) async throws -> CallTool.Result {
        guard let id = arguments["preapproval_id"]?.stringValue, !id.isEmpty else {
            throw ToolFailure("preapproval_id is required")
        }
        let answer = try await post("/v1/preapprovals/\(Self.escape(id))/release", [:])
        let released = answer["released"] as? [String: Any] ?? [:]
        return Self.success(
            "released \(id): \(Money.format(Self.int(released["available_nanousd"]) ?? 0)) returned to the budget",
            answer)
    }

    private func recentSpend(_ arguments: [String: Value]) async throws -> CallTool.Result {
        var limit = 20
        if let value = arguments["limit"] {
            guard let n = value.intValue, (1...200).contains(n) else {
                throw ToolFailure("limit must be a whole number from 1 to 200")
            }
            limit = n
        }
        var path = "/v1/ledger?limit=\(limit)"
        let agent = try agentName(arguments)
        if let agent { path += "&agent=" + Self.escape(agent) }
        let answer = try await get(path)
        let rows = answer["rows"] as? [[String: Any]] ?? []
        let total = rows.reduce(Int64(0)) { $0 + (Self.int($1["cost_nanousd"]) ?? 0) }
        var lines = ["\(rows.count) recent calls\(agent.map { " by \($0)" } ?? ""), \(Money.format(total)) in all:"]
        for row in rows {
            let tokens = (Self.int(row["input_tokens"]) ?? 0) + (Self.int(row["output_tokens"]) ?? 0)
            lines.append(
                "\(Self.time(Self.int(row["time_ms"]) ?? 0))  \(row["model"] as? String ?? "?")  \(tokens) tokens"
                    + "  \(Money.format(Self.int(row["cost_nanousd"]) ?? 0))  \(row["outcome"] as? String ?? "")")
        }
        var structured = answer
        structured["total_cost_nanousd"] = total
        return Self.success(lines.joined(separator: "\n"), structured)
    }

    // MARK: Helpers

    struct ToolFailure: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    private func agentName(_ arguments: [String: Value]) throws -> String? {
        if let value = arguments["agent"] {
            guard let name = value.stringValue, !name.isEmpty else { throw ToolFailure("agent must be a name") }
            return name
        }
        return agent
    }

    private func get(_ path: String) async throws -> [String: Any] {
        try Self.answer(try await client.get(path))
    }

    private func post(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        try Self.answer(try await client.post(path, json: try JSONSerialization.data(withJSONObject: body)))
    }

    private static func answer(_ response: DaemonClient.Response) throws -> [String: Any] {
        guard (200..<300).contains(response.status), let json = response.json else {
            throw ToolFailure(response.error?.message ?? "the daemon answered HTTP \(response.status)")
        }
        return json
    }

    static func success(_ text: String, _ structured: [String: Any]) -> CallTool.Result {
        let structuredValue: Value? = try? value(structured)
        return CallTool.Result(
            content: [.text(text: text, annotations: nil, _meta: nil)], structuredContent: structuredValue,
            isError: false)
    }

    static func failure(_ text: String) -> CallTool.Result {
        CallTool.Result(content: [.text(text: text, annotations: nil, _meta: nil)], isError: true)
    }

    static func int(_ value: Any?) -> Int64? { (value as? NSNumber)?.int64Value }

    static func time(_ ms: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? text
    }

    /// A daemon answer as an MCP value (through JSON).
    static func value(_ object: Any) throws -> Value {
        try JSONDecoder().decode(Value.self, from: JSONSerialization.data(withJSONObject: object))
    }

    /// An MCP value as a Foundation JSON object (through JSON).
    static func foundation(_ value: Value) throws -> Any {
        try JSONSerialization.jsonObject(with: JSONEncoder().encode(value), options: [.fragmentsAllowed])
    }

    static func schema(_ properties: [String: Value], required: [String] = []) -> Value {
        var object: [String: Value] = [
            "type": .string("object"), "properties": .object(properties), "additionalProperties": .bool(false),
        ]
        if !required.isEmpty { object["required"] = .array(required.map(Value.string)) }
        return .object(object)
    }

    static func stringProperty(_ description: String) -> Value {
        .object(["type": .string("string"), "description": .string(description)])
    }

    static func integerProperty(_ description: String) -> Value {
        .object(["type": .string("integer"), "minimum": .int(0), "description": .string(description)])
    }
}
