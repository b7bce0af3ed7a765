import ArgumentParser
import Foundation
import SpendwallCore

struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "What providers billed (Stripe invoices, cost exports) beside what the ledger saw, per month.",
        subcommands: [Show.self, Import.self],
        defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "The side-by-side table of a month (default: this month, UTC).")

        @Option(help: "The month, YYYY-MM (e.g. 2026-11).") var period: String?
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if let period, !Self.isMonth(period) {
                throw ValidationError("--period must be a month written YYYY-MM, like 2026-11")
            }
        }

        static func isMonth(_ text: String) -> Bool {
            let parts = text.split(separator: "-")
            guard parts.count == 2, parts[0].count == 4, parts[1].count == 2, let m = Int(parts[1]) else {
                return false
            }
            return Int(parts[0]) != nil && (1...12).contains(m)
        }

        func run() async throws {
            let response = try await CommandContext.get("/v1/reconcile" + (period.map { "?period=\($0)" } ?? ""))
            if json { return CommandContext.printJSON(response.body) }
            ReconcileCommand.printTable(response.json ?? [:])
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Reconcile a provider's cost export (OpenAI or Anthropic, CSV or JSON).",
            discussion: """
                Supported: OpenAI's /v1/organization/costs JSON page (start_time, results[].amount.value), \
                Anthropic's /v1/organizations/cost_report JSON page (starting_at, results[].amount in cents), \
                and CSV with those fields flattened (start_time,amount_value / starting_at,amount) or \
                date,cost_usd with --provider. Importing the same file name again replaces its figures.
                """)

        @Argument(help: "The export file.") var file: String
        @Option(help: "openai or anthropic (needed for a date,cost_usd CSV).") var provider: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CLIFailure.usage("cannot read \(file)")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw CLIFailure.usage("\(file) is not UTF-8 text")
            }
            var body: [String: Any] = ["content": text, "reference": (file as NSString).lastPathComponent]
            if let provider { body["provider"] = provider }
            let response = try await CommandContext.client.post(
                "/v1/reconcile/import", json: try JSONSerialization.data(withJSONObject: body))
            guard response.status == 200 else {
                throw CLIFailure(
                    message: (response.error.map { "\(file): \($0.message) (\($0.code))" })
                        ?? "the daemon answered HTTP \(response.status)",
                    code: response.status == 400 ? 2 : 1)
            }
            if json { return CommandContext.printJSON(response.body) }
            let rows = response.json?["rows"] as? [[String: Any]] ?? []
            print("Imported \(file): \(response.json?["lines"] ?? 0) provider-months.")
            ReconcileCommand.printTable(["rows": rows])
        }
    }

    static func printTable(_ body: [String: Any]) {
        let rows = body["rows"] as? [[String: Any]] ?? []
        guard !rows.isEmpty else {
            print(
                "Nothing billed or spent\(body["period"].map { " in \($0)" } ?? ""). Import an export with `spendwall reconcile import FILE`, or set up the Stripe webhook."
            )
            return
        }
        func money(_ v: Any?) -> String {
            guard let n = v as? NSNumber else { return "-" }
            return Money.format(n.int64Value)
        }
        var table = TextTable(header: ["PERIOD", "PROVIDER", "SOURCE", "BILLED", "LEDGER", "DRIFT", "DRIFT %", ""])
        table.rightAligned = [3, 4, 5, 6]
        for r in rows {
            table.rows.append([
                r["period"] as? String ?? "?", r["provider"] as? String ?? "?", r["source"] as? String ?? "?",
                money(r["billed_nanousd"]), money(r["ledger_nanousd"]), money(r["drift_nanousd"]),
                (r["drift_percent"] as? NSNumber).map { String(format: "%.2f%%", $0.doubleValue) } ?? "-",
                (r["drifted"] as? Bool ?? false) ? "DRIFT" : "",
            ])
        }
        print(table.render())
    }
}
