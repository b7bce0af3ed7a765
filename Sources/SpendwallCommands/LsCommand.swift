import ArgumentParser
import Foundation
import SpendwallCore

struct LsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "Show spend grouped by app, agent, tag, model, session or day (--team: the whole team's).")

    enum Grouping: String, ExpressibleByArgument, CaseIterable {
        case app, agent, tag, model, session, day, provider, outcome, machine
    }

    @Option(help: "Group by: \(Grouping.allCases.map(\.rawValue).joined(separator: ", ")).") var by: Grouping = .app
    @Option(help: "How far back: 1h, 1d, 7d, 30d (or any <n>m|h|d).") var since = "1d"
    @Flag(help: "Print JSON (the same numbers as the table).") var json = false
    @Flag(help: "The team's spend, every machine's rows from the team database (team mode).") var team = false

    func validate() throws {
        if by == .machine && !team {
            throw ValidationError("--by machine needs --team (this machine's ledger holds only its own rows)")
        }
        guard Duration.milliseconds(parsing: since) != nil else {
            throw ValidationError("--since must be a duration like 1h, 1d, 7d or 30d, not \"\(since)\"")
        }
    }

    struct Answer: Decodable {
        struct Row: Decodable {
            var key: String
            var calls: Int64
            var input_tokens: Int64
            var output_tokens: Int64
            var cache_read_tokens: Int64
            var cache_write_tokens: Int64
            var cost_nanousd: Int64
            var share: Double
        }
        var rows: [Row]
    }

    func run() async throws {
        let endpoint = team ? "/v1/team/spend" : "/v1/spend"
        let response = try await CommandContext.get("\(endpoint)?by=\(by.rawValue)&since=\(since)")
        if json { return CommandContext.printJSON(response.body) }
        let answer = try response.decode(Answer.self)
        guard !answer.rows.isEmpty else {
            print("No \(team ? "team " : "")spend in the last \(since).")
            return
        }
        var table = TextTable(header: [
            by.rawValue.uppercased(), "CALLS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "COST", "SHARE",
        ])
        table.rightAligned = [1, 2, 3, 4, 5, 6, 7]
        var total = (calls: Int64(0), i: Int64(0), o: Int64(0), cr: Int64(0), cw: Int64(0), cost: Int64(0))
        for row in answer.rows {
            table.rows.append([
                row.key, Format.count(row.calls), Format.count(row.input_tokens), Format.count(row.output_tokens),
                Format.count(row.cache_read_tokens), Format.count(row.cache_write_tokens),
                Money.format(row.cost_nanousd),
                Format.percent(row.share),
            ])
            total = (
                total.calls + row.calls, total.i + row.input_tokens, total.o + row.output_tokens,
                total.cr + row.cache_read_tokens, total.cw + row.cache_write_tokens, total.cost + row.cost_nanousd
            )
        }
        if by != .tag {
            table.rows.append([
                "TOTAL", Format.count(total.calls), Format.count(total.i), Format.count(total.o),
                Format.count(total.cr),
                Format.count(total.cw), Money.format(total.cost), "100.0%",
            ])
        }
        print("\(team ? "Team spend" : "Spend") by \(by.rawValue), last \(since)\n")
        print(table.render())
    }
}
