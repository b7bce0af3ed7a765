import Foundation
import MCP
import SpendwallClient
import SpendwallCore

/// `spendwall mcp`: a stdio MCP server that lets an agent ask about its own budget, estimate a
/// call, and reserve money before it plans. Everything comes from the daemon over its socket;
/// nothing is read from the database directly.
public enum SpendwallMCPServer {
    public static func run(socketPath: String, agent: String?) async throws {
        let tools = BudgetTools(client: DaemonClient(socketPath: socketPath), agent: agent, parentPID: getppid())
        let server = Server(
            name: "spendwall", version: "0.1.0",
            instructions: """
                Spendwall guards what LLM calls cost. Ask get_remaining_budget before expensive work, \
                estimate_cost before a large call, and request_preapproval to reserve money for a plan.
                """,
            capabilities: .init(
                resources: .init(subscribe: false, listChanged: false), tools: .init(listChanged: false)))
        await server.withMethodHandler(ListTools.self) { _ in .init(tools: BudgetTools.tools) }
        await server.withMethodHandler(CallTool.self) { params in
            await tools.call(params.name, params.arguments ?? [:])
        }
        await server.withMethodHandler(ListResources.self) { _ in
            .init(resources: [
                Resource(
                    name: "Spending caps", uri: "spendwall://caps",
                    description: "Every cap in force with its spent, reserved and remaining budget.",
                    mimeType: "text/plain"),
                Resource(
                    name: "Spend summary", uri: "spendwall://spend",
                    description: "What was spent in the last day, by agent and by model.", mimeType: "text/plain"),
            ])
        }
        await server.withMethodHandler(ReadResource.self) { params in
            let text = try await ResourceText(client: tools.client).read(params.uri)
            return .init(contents: [.text(text, uri: params.uri, mimeType: "text/plain")])
        }
        try await server.start(transport: StdioTransport())
        await server.waitUntilCompleted()
    }
}

/// The resources as readable text.
struct ResourceText {
    let client: DaemonClient

    func read(_ uri: String) async throws -> String {
        do {
            switch uri {
            case "spendwall://caps": return try await caps()
            case "spendwall://spend": return try await spend()
            default:
                throw MCPError.invalidParams("no resource \(uri); there are spendwall://caps and spendwall://spend")
            }
        } catch let error as SpendwallError where error.code == .daemonUnreachable {
            throw MCPError.internalError("the Spendwall daemon is not running: \(error.message)")
        }
    }

    private func json(_ path: String) async throws -> [String: Any] {
        let response = try await client.get(path)
        guard response.status == 200, let json = response.json else {
            throw MCPError.internalError(response.error?.message ?? "the daemon answered HTTP \(response.status)")
        }
        return json
    }

    private func caps() async throws -> String {
        let snapshot = try await json("/v1/policy/snapshot")
        var lines: [String] = []
        for cap in snapshot["caps"] as? [[String: Any]] ?? [] {
            let scope = (cap["scope"] as? [String: String] ?? [:]).map { "\($0.key)=\($0.value)" }.joined(
                separator: ",")
            lines.append(
                "\(cap["name"] as? String ?? "?") [\(scope)] \(cap["window"] as? String ?? "?") \(cap["action"] as? String ?? "")"
            )
            for key in cap["keys"] as? [[String: Any]] ?? [] {
                let spent = BudgetTools.int(key["spent_nanousd"]) ?? 0
                let reserved = BudgetTools.int(key["reserved_nanousd"]) ?? 0
                var line =
                    "  \(key["key"] as? String ?? "*"): spent \(Money.format(spent)), reserved \(Money.format(reserved))"
                if let limit = BudgetTools.int(key["limit_nanousd"]) {
                    line +=
                        ", limit \(Money.format(limit)), left \(Money.format(BudgetTools.int(key["remaining_nanousd"]) ?? 0))"
                }
                lines.append(line)
            }
        }
        return lines.isEmpty ? "No caps are configured." : lines.joined(separator: "\n")
    }

    private func spend() async throws -> String {
        var lines: [String] = []
        for grouping in ["agent", "model"] {
            let summary = try await json("/v1/spend?by=\(grouping)&since=1d")
            let total = BudgetTools.int((summary["total"] as? [String: Any])?["cost_nanousd"]) ?? 0
            lines.append("Last day by \(grouping) (\(Money.format(total)) in all):")
            for row in summary["rows"] as? [[String: Any]] ?? [] {
                lines.append(
                    "  \(row["key"] as? String ?? "?"): \(Money.format(BudgetTools.int(row["cost_nanousd"]) ?? 0))"
                        + " in \(BudgetTools.int(row["calls"]) ?? 0) calls")
            }
        }
        return lines.joined(separator: "\n")
    }
}
