import ArgumentParser
import Foundation
import SpendwallConfig
import SpendwallCore

struct CapsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "caps", abstract: "Show caps and what is spent and reserved against them.",
        subcommands: [List.self, SetCap.self, Remove.self], defaultSubcommand: List.self)

    struct SetCap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract:
                "Add a cap to caps.toml, or replace the one with this name (other caps and comments stay as they are).")

        @Argument(help: "The cap's name.") var name: String
        @Option(help: "global, agent=A, app=X, session=S, model=M or tag=KEY=VALUE (a value of * caps each one).")
        var scope: String
        @Option(help: "1h, 1d, 7d, 30d (rolling) or day, week, month (calendar).") var window: String
        @Option(help: "Dollar limit.") var limitUsd: Double?
        @Option(help: "Token limit (all billed kinds).") var limitTokens: Int64?
        @Option(help: "block, alert or approve.") var action = "block"
        @Option(help: "Fraction of the limit that raises a warning.") var warnAt = 0.8

        func validate() throws {
            guard limitUsd != nil || limitTokens != nil else {
                throw ValidationError("give --limit-usd and/or --limit-tokens")
            }
            guard CapWindow(parsing: window) != nil else { throw ValidationError("--window: not a window: \(window)") }
            guard CapAction(rawValue: action) != nil else {
                throw ValidationError("--action must be block, alert or approve")
            }
            guard Self.parseScope(scope) != nil else {
                throw ValidationError("--scope must be global, agent=A, app=X, session=S, model=M or tag=KEY=VALUE")
            }
            if let limitUsd {
                guard Money.nanos(fromDollars: limitUsd) != nil else {
                    throw ValidationError("--limit-usd must not be negative")
                }
            }
        }

        static func parseScope(_ text: String) -> CapScope? { CapScope(flag: text) }

        func run() async throws {
            let cap = Cap(
                name: name, scope: Self.parseScope(scope)!, window: CapWindow(parsing: window)!,
                limitNanoUSD: limitUsd.flatMap(Money.nanos(fromDollars:)), limitTokens: limitTokens,
                action: CapAction(rawValue: action)!, warnAt: warnAt)
            _ = try await CapsEdit.apply { text in
                (try CapsFileEditor.setting(CapsFileEditor.block(for: cap), named: name, in: text), true)
            }
            print("cap \"\(name)\" saved in caps.toml")
            await CapsEdit.reloadIfRunning()
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a cap from caps.toml.")
        @Argument(help: "The cap's name.") var name: String

        func run() async throws {
            _ = try await CapsEdit.apply { text in
                guard let edited = try CapsFileEditor.removing(named: name, in: text) else {
                    throw CLIFailure.failure("caps.toml has no cap named \"\(name)\" (see `spendwall caps ls`)")
                }
                return (edited, true)
            }
            print("cap \"\(name)\" removed from caps.toml")
            await CapsEdit.reloadIfRunning()
        }
    }

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

/// Writes caps.toml safely: edit, validate, write a temporary file beside it, rename over it.
enum CapsEdit {
    static func apply(_ edit: (String) throws -> (String, Bool)) async throws -> Bool {
        let path = CommandContext.paths.configFile("caps.toml")
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let (edited, result) = try edit(text)
        try FileManager.default.createDirectory(
            atPath: CommandContext.paths.configDirectory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        let temporary = path + ".tmp-\(getpid())"
        guard
            FileManager.default.createFile(
                atPath: temporary, contents: Data(edited.utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw CLIFailure.failure("cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CLIFailure.failure("cannot replace \(path): \(String(cString: strerror(errno)))")
        }
        return result
    }

    /// Applies the change now when a daemon runs (it would also notice the file within a second).
    static func reloadIfRunning() async {
        guard let response = try? await CommandContext.client.post("/v1/reload", json: Data("{}".utf8)) else {
            print("(no daemon is running; the caps apply when it starts)")
            return
        }
        if response.status == 200 {
            print("the daemon now enforces \(response.json?["caps"] as? Int ?? 0) caps")
        } else {
            print("the daemon kept its previous caps: \(response.error?.message ?? "HTTP \(response.status)")")
        }
    }
}
