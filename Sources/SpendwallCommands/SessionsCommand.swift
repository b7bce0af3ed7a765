import ArgumentParser
import Foundation
import SpendwallCore

struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "The sessions `spendwall run` launched: their spend, how they ended, what they changed.",
        subcommands: [List.self, Show.self, Replay.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List sessions, newest first.")
        @Option(name: .short, help: "How many sessions to list (1 to 1000).") var n = 50
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard (1...1000).contains(n) else { throw ValidationError("-n must be from 1 to 1000") }
        }

        func run() async throws {
            let response = try await CommandContext.get("/v1/sessions?limit=\(n)")
            if json { return CommandContext.printJSON(response.body) }
            let sessions = response.json?["sessions"] as? [[String: Any]] ?? []
            guard !sessions.isEmpty else {
                return print("No sessions yet. Start one with `spendwall run --budget-usd 5 -- claude`.")
            }
            var table = TextTable(
                header: ["ID", "STARTED", "STATE", "CALLS", "COST", "BUDGET", "COMMAND"], rightAligned: [3, 4, 5])
            for s in sessions {
                let spend = s["spend"] as? [String: Any] ?? [:]
                table.rows.append([
                    s["id"] as? String ?? "?",
                    SessionsCommand.time(s["started_ms"]),
                    (s["stop_reason"] as? String) ?? (s["status"] as? String ?? "?"),
                    Format.count(spend["calls"] as? Int64 ?? 0),
                    Money.format(spend["cost_nanousd"] as? Int64 ?? 0),
                    SessionsCommand.budget(s),
                    SessionsCommand.commandLine(s, limit: 40),
                ])
            }
            print(table.render())
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "One session: spend by model, how it ended, changed files.")
        @Argument(help: "The session id (from `spendwall sessions ls`).") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let response = try await CommandContext.get("/v1/sessions/\(SessionsCommand.escaped(id))")
            if json { return CommandContext.printJSON(response.body) }
            let answer = response.json ?? [:]
            let s = answer["session"] as? [String: Any] ?? [:]
            let spend = s["spend"] as? [String: Any] ?? [:]
            var lines: [String] = []
            lines.append("session   \(s["id"] as? String ?? id)" + ((s["name"] as? String).map { "  \"\($0)\"" } ?? ""))
            lines.append("command   \(SessionsCommand.commandLine(s, limit: 200))")
            if let cwd = s["cwd"] as? String { lines.append("cwd       \(cwd)") }
            if let branch = s["git_branch"] as? String {
                lines.append("git       \(branch) at \((s["git_head"] as? String)?.prefix(12) ?? "?")")
            }
            if let agent = s["agent"] as? String { lines.append("agent     \(agent)") }
            if let tags = s["tags"] as? [String: String], !tags.isEmpty {
                lines.append(
                    "tags      " + tags.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: ", "))
            }
            lines.append("started   \(SessionsCommand.time(s["started_ms"]))")
            if s["ended_ms"] != nil {
                var end = "ended     \(SessionsCommand.time(s["ended_ms"])): \(s["stop_reason"] as? String ?? "?")"
                if let code = s["exit_code"] as? Int64 { end += ", exit \(code)" }
                if let signal = s["exit_signal"] as? Int64 { end += ", signal \(signal)" }
                lines.append(end)
            } else {
                var state = "state     running"
                if let cap = answer["cap"] as? [String: Any], let used = cap["used"] as? Double {
                    state += ", \(Format.percent(used)) of its budget spent or reserved"
                }
                lines.append(state)
            }
            lines.append(
                "spend     \(Format.count(spend["calls"] as? Int64 ?? 0)) calls, "
                    + "\(Money.format(spend["cost_nanousd"] as? Int64 ?? 0)) of budget \(SessionsCommand.budget(s))")
            if let resume = s["resume_command"] as? String { lines.append("resume    \(resume)") }
            print(lines.joined(separator: "\n"))
            let models = answer["by_model"] as? [[String: Any]] ?? []
            if !models.isEmpty {
                var table = TextTable(header: ["MODEL", "CALLS", "IN", "OUT", "COST"], rightAligned: [1, 2, 3, 4])
                for m in models {
                    table.rows.append([
                        m["model"] as? String ?? "?", Format.count(m["calls"] as? Int64 ?? 0),
                        Format.count(m["input_tokens"] as? Int64 ?? 0), Format.count(m["output_tokens"] as? Int64 ?? 0),
                        Money.format(m["cost_nanousd"] as? Int64 ?? 0),
                    ])
                }
                print("\n" + table.render())
            }
            if let changed = answer["changed_files"] as? [String] {
                print(changed.isEmpty ? "\nNo changed files." : "\nChanged files:\n" + changed.joined(separator: "\n"))
            }
            let artifacts = answer["artifacts"] as? [[String: Any]] ?? []
            if !artifacts.isEmpty {
                print(
                    "\nArtifacts: "
                        + artifacts.map { a in
                            "\(a["kind"] ?? "?") (\(Format.count(a["size"] as? Int64 ?? 0)) bytes\((a["truncated"] as? Bool) == true ? ", truncated" : ""))"
                        }.joined(separator: ", "))
                print("Replay the terminal with `spendwall sessions replay \(id)`; the diff with `--diff`.")
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Print a session's recorded terminal output as it was written (raw bytes), or its git diff.")
        @Argument(help: "The session id.") var id: String
        @Flag(help: "Print the git diff taken when the session ended instead.") var diff = false

        func run() async throws {
            let kind = diff ? "git_diff" : "output"
            let response = try await CommandContext.get(
                "/v1/sessions/\(SessionsCommand.escaped(id))/artifacts/\(kind)")
            guard let text = response.json?["content_base64"] as? String, let data = Data(base64Encoded: text) else {
                throw CLIFailure.failure("the daemon sent no \(kind) for session \(id)")
            }
            FileHandle.standardOutput.write(data)
            if (response.json?["truncated"] as? Bool) == true {
                FileHandle.standardError.write(Data("\nspendwall: the recording was cut at its size limit\n".utf8))
            }
        }
    }

    static func escaped(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? id
    }

    static func time(_ value: Any?) -> String {
        guard let ms = value as? Int64 else { return "-" }
        return ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func budget(_ s: [String: Any]) -> String {
        var parts: [String] = []
        if let usd = s["budget_nanousd"] as? Int64 { parts.append(Money.format(usd)) }
        if let tokens = s["budget_tokens"] as? Int64 { parts.append("\(Format.count(tokens)) tokens") }
        return parts.isEmpty ? "none" : parts.joined(separator: " / ")
    }

    static func commandLine(_ s: [String: Any], limit: Int) -> String {
        let text = (s["command"] as? [String] ?? []).joined(separator: " ")
        return text.count > limit ? String(text.prefix(limit - 1)) + "…" : text
    }
}
