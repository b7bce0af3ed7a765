import ArgumentParser
import Foundation
import SpendwallClient
import SpendwallDaemon

struct StartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Start the daemon in the background (for machines without systemd).")

    func run() async throws {
        let paths = CommandContext.paths
        if (try? await CommandContext.client.get("/v1/health")) != nil {
            print("Spendwall is already running (socket \(paths.socketPath))")
            return
        }
        try FileManager.default.createDirectory(
            atPath: paths.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let pid = try Spawn.detached(
            executable: Spawn.currentExecutable(), arguments: ["daemon"], logFile: paths.logFile)
        for _ in 0..<100 {
            if (try? await CommandContext.client.get("/v1/health"))?.status == 200 {
                print("Spendwall started: pid \(pid), socket \(paths.socketPath), log \(paths.logFile)")
                return
            }
            if kill(pid, 0) != 0 && errno == ESRCH { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let tail =
            (try? String(contentsOfFile: paths.logFile, encoding: .utf8))?.split(separator: "\n").suffix(5).joined(
                separator: "\n") ?? ""
        throw CLIFailure.failure("the daemon did not come up; last lines of \(paths.logFile):\n\(tail)")
    }
}

struct StopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop the daemon (SIGTERM; it finishes writing what it accepted).")

    func run() async throws {
        let paths = CommandContext.paths
        var pid = PIDFile.read(paths.pidFile)
        if let health = try? await CommandContext.client.get("/v1/health"), let live = health.json?["pid"] as? Int {
            pid = Int32(live)
        }
        guard let pid, kill(pid, 0) == 0 else {
            print("Spendwall is not running")
            return
        }
        guard kill(pid, SIGTERM) == 0 else {
            throw CLIFailure.failure("cannot signal pid \(pid): \(String(cString: strerror(errno)))")
        }
        for _ in 0..<300 {
            if kill(pid, 0) != 0 {
                print("Spendwall stopped (pid \(pid))")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIFailure.failure("pid \(pid) is still running 30 s after SIGTERM")
    }
}

/// Starting a detached daemon process.
enum Spawn {
    static func currentExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Starts `executable` in a new session with stdin from /dev/null and output appended to `logFile`.
    static func detached(executable: String, arguments: [String], logFile: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logFile, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of ours (a caller's pipes, say) may stay open in a long-lived daemon.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            if let fd = Int32(name), fd > 2 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(0x80))  // POSIX_SPAWN_SETSID (glibc)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw CLIFailure.failure("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }
}
