import ArgumentParser
import Foundation
import SpendwallCore

struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "Alerts sent to Slack, email and webhooks (alerts.toml): dead letters, retries, tests.",
        subcommands: [List.self, Retry.self, Test.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List alerts that could not be delivered (dead letters).")

        @Flag(help: "Also those a retry delivered since.") var all = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let response = try await CommandContext.get("/v1/alerts?status=\(all ? "all" : "dead")")
            if json { return CommandContext.printJSON(response.body) }
            let body = response.json ?? [:]
            let transports = body["transports"] as? [[String: Any]] ?? []
            if transports.isEmpty {
                print("No transports: alerts.toml routes nothing (see the README's alerts.toml section).")
            } else {
                print(
                    "Transports: "
                        + transports.map { "\($0["name"] as? String ?? "?") (\($0["kind"] as? String ?? "?"))" }
                        .joined(separator: ", "))
            }
            if let c = body["counts"] as? [String: Any] {
                print(
                    "Since the daemon started: \(c["delivered"] ?? 0) delivered, \(c["retried"] ?? 0) retries, \(c["dead_lettered"] ?? 0) dead letters, \(c["suppressed"] ?? 0) held back by the rate limit."
                )
            }
            let letters = body["dead_letters"] as? [[String: Any]] ?? []
            guard !letters.isEmpty else {
                print("\nNo dead letters.")
                return
            }
            var table = TextTable(header: ["ID", "STATUS", "TRANSPORT", "KIND", "TRIES", "ERROR", "ALERT"])
            table.rightAligned = [0, 4]
            for l in letters {
                table.rows.append([
                    "\(l["id"] ?? "?")", l["status"] as? String ?? "?", l["transport"] as? String ?? "?",
                    l["kind"] as? String ?? "?", "\(l["attempts"] ?? 0)", l["last_error"] as? String ?? "",
                    l["summary"] as? String ?? "",
                ])
            }
            print("\n" + table.render())
            print("\nSend one again with `spendwall alerts retry ID`.")
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retry", abstract: "Deliver a dead letter again, once, now.")
        @Argument(help: "The dead letter's id (from `spendwall alerts ls`).") var id: Int64

        func run() async throws {
            let response = try await CommandContext.client.post("/v1/alerts/\(id)/retry", json: Data("{}".utf8))
            guard response.status == 200 else {
                throw CLIFailure.failure(
                    (response.error.map { "\($0.message) (\($0.code))" })
                        ?? "the daemon answered HTTP \(response.status)")
            }
            print("dead letter \(id): delivered to \(response.json?["transport"] as? String ?? "its transport")")
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "test", abstract: "Send a test alert through one transport, once, now.")
        @Argument(help: "A transport name from alerts.toml.") var transport: String

        func run() async throws {
            let body = try JSONSerialization.data(withJSONObject: ["transport": transport])
            let response = try await CommandContext.client.post("/v1/alerts/test", json: body)
            guard response.status == 200 else {
                throw CLIFailure.failure(
                    (response.error.map { "\($0.message) (\($0.code))" })
                        ?? "the daemon answered HTTP \(response.status)")
            }
            print("\(transport): test alert delivered")
        }
    }
}
