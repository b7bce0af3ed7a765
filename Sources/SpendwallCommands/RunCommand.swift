import ArgumentParser
import Foundation
import SpendwallClient
import SpendwallCore
import SpendwallRun

#if canImport(Glibc)
    import Glibc
#endif

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Launch a program as a session under a budget, and stop it cleanly when the budget is spent.",
        discussion: """
            The program runs in a pseudo-terminal of its own (so Claude Code, Codex and other TUIs work), with
            OPENAI_BASE_URL and ANTHROPIC_BASE_URL pointing at the daemon's proxy under /session/ID/: every call
            it makes is recorded as the session's and checked against the session's budget. When the budget is
            spent (or `spendwall kill --session ID`), further calls get 402 and the program gets Ctrl+C (SIGINT to
            its foreground process group), then SIGTERM and SIGKILL each after the grace period. When stdin is not
            a terminal the program gets pipes instead. `spendwall sessions show ID` shows the record afterwards.
            Exits with the program's exit status (128 + the signal when a signal ended it).
            Example: spendwall run --budget-usd 5 --agent refactor -- claude
            """)

    @Option(name: .customLong("budget-usd"), help: "The session's dollar budget, e.g. 5 or 0.50.")
    var budgetUSD: Double?
    @Option(name: .customLong("budget-tokens"), help: "The session's token budget (all billed token kinds).")
    var budgetTokens: Int64?
    @Option(help: "The agent name recorded on the session's calls.") var agent: String?
    @Option(name: .customLong("tag"), help: "A tag recorded on the session's calls, key=value (repeatable).")
    var tags: [String] = []
    @Option(help: "A title for the session.") var name: String?
    @Option(help: "Seconds between Ctrl+C, SIGTERM and SIGKILL when stopping the program.") var grace: Double = 5
    @Argument(parsing: .postTerminator, help: "The program and its arguments, after `--`.")
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty, !command[0].isEmpty else {
            throw ValidationError("give the program to run after `--`, e.g. spendwall run --budget-usd 5 -- claude")
        }
        if let budgetUSD {
            guard budgetUSD > 0, Money.nanos(fromDollars: budgetUSD) ?? 0 > 0 else {
                throw ValidationError("--budget-usd must be more than 0, e.g. --budget-usd 5")
            }
        }
        if let budgetTokens, budgetTokens <= 0 {
            throw ValidationError("--budget-tokens must be more than 0")
        }
        for tag in tags where Self.parseTag(tag) == nil {
            throw ValidationError("--tag takes key=value, not \"\(tag)\"")
        }
        guard grace.isFinite, grace >= 0, grace <= 3600 else {
            throw ValidationError("--grace must be from 0 to 3600 seconds")
        }
        if let agent, agent.isEmpty { throw ValidationError("--agent must not be empty") }
    }

    static func parseTag(_ text: String) -> (String, String)? {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else { return nil }
        return (parts[0], parts[1])
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let executable = ChildLauncher.resolve(command[0], path: environment["PATH"]) else {
            throw CLIFailure(
                message:
                    "cannot find the program \"\(command[0])\" (not in PATH, or not executable); nothing was started",
                code: 127)
        }
        let cwd = FileManager.default.currentDirectoryPath
        let git = GitSnapshot.head(cwd: cwd)
        let terminal = TerminalMode(fd: 0)

        var body: [String: Any] = [
            "command": command, "cwd": cwd, "terminal": terminal == nil ? "pipe" : "pty", "pid": Int(getpid()),
        ]
        if let name { body["name"] = name }
        if let agent { body["agent"] = agent }
        if !tags.isEmpty { body["tags"] = Dictionary(tags.compactMap(Self.parseTag), uniquingKeysWith: { _, b in b }) }
        if let budgetUSD, let nanos = Money.nanos(fromDollars: budgetUSD) { body["budget_nanousd"] = nanos }
        if let budgetTokens { body["budget_tokens"] = budgetTokens }
        if let branch = git?.branch { body["git_branch"] = branch }
        if let head = git?.head { body["git_head"] = head }

        let client = CommandContext.client
        let started = try await client.post("/v1/sessions", json: try JSONSerialization.data(withJSONObject: body))
        guard started.status == 200, let answer = started.json, let session = answer["session"] as? [String: Any],
            let id = session["id"] as? String, let openAI = answer["openai_base_url"] as? String,
            let anthropic = answer["anthropic_base_url"] as? String
        else {
            throw CLIFailure.failure(
                "the daemon did not start the session: \(started.error.map { "\($0.message) (\($0.code))" } ?? "HTTP \(started.status)")"
            )
        }

        // Listen for the daemon's word to stop before anything can spend.
        let wake = try WakePipe()
        let watcher = SessionWatcher(id: id, budgetNanoUSD: body["budget_nanousd"] as? Int64)
        let watching = Task { try await watcher.watch(client) }
        try await watcher.waitUntilOpen()

        var childEnvironment = environment
        childEnvironment["OPENAI_BASE_URL"] = openAI
        childEnvironment["ANTHROPIC_BASE_URL"] = anthropic
        childEnvironment["SPENDWALL_SESSION"] = id
        if terminal == nil {
            FileHandle.standardError.write(
                Data(
                    "spendwall: stdin is not a terminal; running \(command[0]) with pipes instead of a pseudo-terminal (session \(id))\n"
                        .utf8))
        }
        wake.catchSignals([SIGCHLD, SIGWINCH, SIGINT, SIGTERM, SIGHUP])
        let child: LaunchedChild
        do {
            child = try ChildLauncher.launch(
                executable: executable, arguments: command, environment: childEnvironment.map { "\($0)=\($1)" },
                terminal: terminal != nil, settings: terminal?.saved, size: terminal?.size)
        } catch {
            wake.restore()
            watching.cancel()
            _ = try? await finish(client, id: id, exit: nil, failure: "\(error)")
            throw CLIFailure(message: "\(error)", code: 127)
        }
        let supervisor = SessionSupervisor(
            child: child, terminal: terminal, graceMS: Int64(grace * 1000), wake: wake)
        watcher.attach(supervisor)
        let exit = await Self.runOnThread { supervisor.run() }
        wake.restore()
        watching.cancel()

        // The program has ended: its exit status is what matters now, even if the record fails.
        let record: [String: Any]?
        do {
            record = try await finish(client, id: id, exit: exit, failure: nil)
        } catch {
            FileHandle.standardError.write(
                Data("spendwall: could not record the end of session \(id): \(error)\n".utf8))
            record = nil
        }
        let spend = record?["spend"] as? [String: Any] ?? [:]
        let cost = (spend["cost_nanousd"] as? Int64).map(Money.format) ?? "$0.00"
        let calls = spend["calls"] as? Int64 ?? 0
        let budget = (body["budget_nanousd"] as? Int64).map { " of " + Money.format($0) } ?? ""
        var summary = "spendwall: session \(id) ended (\(exit.stopReason.rawValue)): \(calls) calls, \(cost)\(budget)"
        if let resume = record?["resume_command"] as? String { summary += "; resume with `\(resume)`" }
        summary += "; details: spendwall sessions show \(id)\n"
        FileHandle.standardError.write(Data(summary.utf8))
        throw ExitCode(exit.shellStatus)
    }

    /// Records how the session ended, with its git snapshot and output. Returns the session.
    private func finish(
        _ client: DaemonClient, id: String, exit: SupervisedExit?, failure: String?
    ) async throws -> [String: Any]? {
        var body: [String: Any] = ["stop_reason": exit?.stopReason.rawValue ?? "exited"]
        var artifacts: [[String: Any]] = []
        if let exit {
            if let code = exit.exitCode { body["exit_code"] = Int(code) }
            if let signal = exit.signal { body["exit_signal"] = Int(signal) }
            if let resume = ResumeCommand.find(in: exit.output.tail) { body["resume_command"] = resume }
            artifacts.append([
                "kind": "output", "content_base64": Data(exit.output.head).base64EncodedString(),
                "truncated": exit.output.truncated,
            ])
        } else {
            body["exit_code"] = 127
            if let failure {
                artifacts.append(["kind": "output", "content_base64": Data(failure.utf8).base64EncodedString()])
            }
        }
        if let changes = GitSnapshot.changes(cwd: FileManager.default.currentDirectoryPath) {
            artifacts.append([
                "kind": "git_status", "content_base64": Data(changes.status).base64EncodedString(),
                "truncated": changes.truncated,
            ])
            artifacts.append([
                "kind": "git_diff", "content_base64": Data(changes.diff).base64EncodedString(),
                "truncated": changes.truncated,
            ])
        }
        body["artifacts"] = artifacts
        let response = try await client.post(
            "/v1/sessions/\(id)/finish", json: try JSONSerialization.data(withJSONObject: body))
        guard response.status == 200 else {
            FileHandle.standardError.write(
                Data(
                    "spendwall: could not record the end of session \(id): \(response.error?.message ?? "HTTP \(response.status)")\n"
                        .utf8))
            return nil
        }
        return response.json?["session"] as? [String: Any]
    }

    /// Runs blocking work on a thread of its own, off Swift's cooperative pool.
    static func runOnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }
}
