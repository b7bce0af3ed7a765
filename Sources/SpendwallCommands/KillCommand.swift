import ArgumentParser
import Foundation

struct KillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill",
        abstract: "Stop spending now: every check in the scope answers `killed` until the switch is turned off.",
        discussion: """
            With no scope the global switch stops every call. The switch survives a daemon restart; every
            flip is recorded with who made it. `spendwall kill --list` shows what is on and the recent flips.
            """)

    @Option(help: "Stop one agent's calls.") var agent: String?
    @Option(help: "Stop one app's calls (the label from labels.toml, as `spendwall ls --by app` shows it).")
    var app: String?
    @Option(help: "Stop one session's calls.") var session: String?
    @Flag(help: "Turn the switch off again.") var off = false
    @Flag(help: "Show the switches that are on and the recent flips.") var list = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        let scopes = [agent, app, session].compactMap { $0 }
        guard scopes.count <= 1 else { throw ValidationError("give at most one of --agent, --app and --session") }
        guard !scopes.contains(where: \.isEmpty) else { throw ValidationError("the scope value must not be empty") }
        guard !(list && (off || !scopes.isEmpty)) else { throw ValidationError("--list takes no scope and no --off") }
    }

    func run() async throws {
        if list { return try await showList() }
        var body: [String: Any] = ["on": !off]
        if let agent { body["agent"] = agent }
        if let app { body["app"] = app }
        if let session { body["session"] = session }
        let response = try await CommandContext.client.post(
            "/v1/kill", json: try JSONSerialization.data(withJSONObject: body))
        if json { CommandContext.printJSON(response.body) }
        guard response.status == 200 else {
            throw CLIFailure.failure(response.error?.message ?? "the daemon answered HTTP \(response.status)")
        }
        guard !json else { return }
        let scope =
            agent.map { "agent \"\($0)\"" } ?? app.map { "app \"\($0)\"" } ?? session.map { "session \"\($0)\"" }
            ?? "global"
        let changed = response.json?["changed"] as? Bool ?? true
        if off {
            print(
                changed
                    ? "\(scope) kill switch off: calls may go ahead again." : "\(scope) kill switch was already off.")
        } else {
            print(
                changed
                    ? "\(scope) kill switch ON: every check in scope now answers `killed`. Undo with the same command and --off."
                    : "\(scope) kill switch was already on.")
        }
    }

    private func showList() async throws {
        let response = try await CommandContext.get("/v1/kill")
        if json { return CommandContext.printJSON(response.body) }
        let answer = response.json ?? [:]
        let on = answer["on"] as? [[String: Any]] ?? []
        print(on.isEmpty ? "No kill switch is on." : "On: " + on.map(Self.describe).joined(separator: ", "))
        let flips = answer["flips"] as? [[String: Any]] ?? []
        guard !flips.isEmpty else { return }
        var table = TextTable(header: ["TIME", "SCOPE", "STATE", "BY"])
        for flip in flips {
            let time = (flip["time_ms"] as? Int64).map { Date(timeIntervalSince1970: Double($0) / 1000) }
            let by = flip["by"] as? [String: Any] ?? [:]
            table.rows.append([
                time.map { ISO8601DateFormatter().string(from: $0) } ?? "?",
                Self.describe(flip["scope"] as? [String: Any] ?? [:]),
                (flip["on"] as? Bool) == true ? "on" : "off",
                "pid \(by["pid"] ?? "?") \(by["exe"] ?? "")",
            ])
        }
        print("\nRecent flips:\n" + table.render())
    }

    private static func describe(_ scope: [String: Any]) -> String {
        guard let value = scope["value"] as? String else { return "global" }
        return "\(scope["kind"] ?? "?") \"\(value)\""
    }
}
