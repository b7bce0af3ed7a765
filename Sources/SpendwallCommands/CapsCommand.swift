import ArgumentParser
import Foundation
import SpendwallCore

struct CapsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "caps", abstract: "Show caps and what is spent and reserved against them.",
        subcommands: [List.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List every cap's budgets.")

        @Flag(help: "Print JSON.") var json = false

        struct Answer: Decodable {
            struct Cap: Decodable {
                var name: String
                var window: String
                var action: String
                var keys: [Key]
            }
            struct Key: Decodable {
                var key: String
                var scope: [String: String]
                var limit_nanousd: Int64?
                var spent_nanousd: Int64
                var reserved_nanousd: Int64
                var remaining_nanousd: Int64?
                var limit_tokens: Int64?
                var spent_tokens: Int64
                var reserved_tokens: Int64
                var used: Double
            }
            var caps: [Cap]
        }

        func run() async throws {
            let response = try await CommandContext.get("/v1/policy/snapshot")
            if json { return CommandContext.printJSON(response.body) }
            let answer = try response.decode(Answer.self)
            guard !answer.caps.isEmpty else {
                print(
                    "No caps. Add [[cap]] entries to \(CommandContext.paths.configFile("caps.toml")), then run `spendwall reload`."
                )
                return
            }
            var table = TextTable(header: [
                "CAP", "SCOPE", "WINDOW", "ACTION", "SPENT", "RESERVED", "LIMIT", "REMAINING", "USED",
            ])
            table.rightAligned = [4, 5, 6, 7, 8]
            for cap in answer.caps {
                for key in cap.keys {
                    let scopeName = key.scope.keys.first ?? ""
                    let scope = scopeName == "global" ? "global" : "\(scopeName)=\(key.key)"
                    let money = key.limit_nanousd != nil || key.limit_tokens == nil
                    table.rows.append([
                        cap.name, scope, cap.window, cap.action,
                        money ? Money.format(key.spent_nanousd) : Format.count(key.spent_tokens) + " tok",
                        money ? Money.format(key.reserved_nanousd) : Format.count(key.reserved_tokens) + " tok",
                        key.limit_nanousd.map(Money.format) ?? key.limit_tokens.map { Format.count($0) + " tok" }
                            ?? "-",
                        key.remaining_nanousd.map(Money.format) ?? "-",
                        Format.percent(key.used),
                    ])
                }
            }
            print(table.render())
        }
    }
}
