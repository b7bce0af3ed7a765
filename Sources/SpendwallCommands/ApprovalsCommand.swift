import ArgumentParser
import Foundation
import SpendwallCore

struct ApprovalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approvals",
        abstract: "Calls held by an action = \"approve\" cap: list them, approve or deny.",
        subcommands: [List.self, Approve.self, Deny.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List approvals (pending by default).")

        @Flag(help: "Every approval, not only pending ones.") var all = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let response = try await CommandContext.get("/v1/approvals?status=\(all ? "all" : "pending")")
            if json { return CommandContext.printJSON(response.body) }
            let approvals = response.json?["approvals"] as? [[String: Any]] ?? []
            guard !approvals.isEmpty else {
                print(all ? "No approvals yet." : "No call is waiting for approval.")
                return
            }
            var table = TextTable(header: ["ID", "STATUS", "APP", "AGENT", "MODEL", "UP TO", "CAP", "RESOLUTION"])
            for a in approvals {
                table.rows.append([
                    a["id"] as? String ?? "?", a["status"] as? String ?? "?", a["app"] as? String ?? "?",
                    a["agent"] as? String ?? "-", a["model"] as? String ?? "?",
                    Money.format(a["estimated_nanousd"] as? Int64 ?? 0), a["cap"] as? String ?? "?",
                    a["resolution"] as? String ?? "",
                ])
            }
            print(table.render())
            if !all {
                print("\nApprove with `spendwall approvals approve ID`, deny with `spendwall approvals deny ID`.")
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "approve", abstract: "Let a held call go ahead (past its approve cap).")
        @Argument(help: "The approval id (from `spendwall approvals ls`).") var id: String
        @Option(help: "Why, recorded with the approval.") var reason: String?

        func run() async throws { try await resolve(id, "approve", reason) }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "deny", abstract: "Refuse a held call: it answers approval_denied.")
        @Argument(help: "The approval id (from `spendwall approvals ls`).") var id: String
        @Option(help: "Why, recorded with the approval.") var reason: String?

        func run() async throws { try await resolve(id, "deny", reason) }
    }

    static func resolve(_ id: String, _ decision: String, _ reason: String?) async throws {
        var body: [String: Any] = ["decision": decision]
        if let reason { body["reason"] = reason }
        let escaped = id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? id
        let response = try await CommandContext.client.post(
            "/v1/approvals/\(escaped)/resolve", json: try JSONSerialization.data(withJSONObject: body))
        guard response.status == 200 else {
            throw CLIFailure.failure(response.error?.message ?? "the daemon answered HTTP \(response.status)")
        }
        print("\(id): \(response.json?["status"] as? String ?? decision)")
    }
}

private func resolve(_ id: String, _ decision: String, _ reason: String?) async throws {
    try await ApprovalsCommand.resolve(id, decision, reason)
}
