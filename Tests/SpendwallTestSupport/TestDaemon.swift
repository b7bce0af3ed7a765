import Foundation
import SpendwallClient

/// A real `spendwall daemon` process on a temporary socket, with its own config and data
/// directories, for end-to-end tests. Torn down (SIGTERM, then the directories) after use.
public final class TestDaemon: @unchecked Sendable {
    public let root: URL
    public let configDirectory: URL
    public let dataDirectory: URL
    public let socketPath: String
    public private(set) var process: Process?
    public var client: DaemonClient { DaemonClient(socketPath: socketPath) }

    /// The environment that points a `spendwall` process at this daemon.
    public var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["SPENDWALL_CONFIG_DIR"] = configDirectory.path
        env["SPENDWALL_DATA_DIR"] = dataDirectory.path
        env["SPENDWALL_SOCKET"] = socketPath
        // A free loopback port for each daemon: tests run side by side, and beside a real daemon.
        env["SPENDWALL_PROXY_ADDR"] = "127.0.0.1:0"
        env.removeValue(forKey: "NOTIFY_SOCKET")
        env.removeValue(forKey: "LISTEN_FDS")
        env.removeValue(forKey: "LISTEN_PID")
        return env
    }

    public init() throws {
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "spendwall-test-\(UUID().uuidString.prefix(8))")
        configDirectory = root.appendingPathComponent("config")
        dataDirectory = root.appendingPathComponent("data")
        socketPath = root.appendingPathComponent("run/spendwall.sock").path
        try FileManager.default.createDirectory(at: configDirectory, withIntermediateDirectories: true)
    }

    /// Runs `body` with a started daemon; `caps` (caps.toml text) and `files` are written first.
    public static func with<T>(
        caps: String? = nil, files: [String: String] = [:], _ body: (TestDaemon) async throws -> T
    ) async throws -> T {
        let daemon = try TestDaemon()
        if let caps { try daemon.writeConfig("caps.toml", caps) }
        for (name, text) in files { try daemon.writeConfig(name, text) }
        try await daemon.start()
        do {
            let result = try await body(daemon)
            try await daemon.stopped()
            daemon.cleanUp()
            return result
        } catch {
            daemon.stop()
            daemon.cleanUp()
            throw error
        }
    }

    public func writeConfig(_ name: String, _ text: String) throws {
        try text.write(to: configDirectory.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    /// Starts the daemon and waits until `GET /v1/health` answers.
    public func start(extraEnvironment: [String: String] = [:]) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binaryPath)
        process.arguments = ["daemon"]
        process.environment = environment.merging(extraEnvironment) { $1 }
        let log = root.appendingPathComponent("daemon.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        for _ in 0..<300 {
            if let response = try? await client.get("/v1/health"), response.status == 200 { return }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("the daemon did not answer /v1/health; log:\n\(self.log)")
    }

    /// The loopback listener's `host:port` (the daemon picks a free port; health says which).
    public func loopbackAddress() async throws -> String {
        let health = try await client.getJSON("/v1/health").json
        guard let address = health["loopback"] as? String else {
            throw TestFailure("the loopback listener is not listening: \(health)")
        }
        return address
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    @discardableResult
    public func stop() -> Int32 {
        guard let process, process.isRunning else { return process?.terminationStatus ?? 0 }
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Kills the daemon with SIGKILL (no clean shutdown).
    public func kill9() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public var log: String {
        (try? String(contentsOf: root.appendingPathComponent("daemon.log"), encoding: .utf8)) ?? ""
    }

    public func cleanUp() {
        try? FileManager.default.removeItem(at: root)
    }

    /// Runs the `spendwall` CLI against this daemon; returns exit status, stdout and stderr.
    public func cli(_ arguments: String...) async throws -> (status: Int32, out: String, err: String) {
        try await Self.run(Self.binaryPath, arguments, environment: environment)
    }

    /// Runs a program to completion.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil)
        async throws
        -> (status: Int32, out: String, err: String)
    {
        try await offload { try runBlocking(executable, arguments, environment: environment) }
    }

    public static func runBlocking(_ executable: String, _ arguments: [String], environment: [String: String]?) throws
        -> (status: Int32, out: String, err: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: outData, as: UTF8.self),
            String(decoding: errData, as: UTF8.self)
        )
    }

    /// The `spendwall` binary: `$SPENDWALL_BIN`, else beside the test bundle in the build folder.
    public static var binaryPath: String {
        if let path = ProcessInfo.processInfo.environment["SPENDWALL_BIN"], !path.isEmpty { return path }
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("spendwall").path
            if FileManager.default.isExecutableFile(atPath: candidate), !candidate.hasSuffix(".xctest") {
                return candidate
            }
            directory.deleteLastPathComponent()
        }
        return ".build/debug/spendwall"
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs blocking work (waiting for a process, reading a socket) on its own thread, so it never
/// holds one of the few cooperative threads the daemon client's continuations need.
public func offload<T: Sendable>(_ work: @escaping () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        nonisolated(unsafe) let work = work
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

extension TestDaemon {
    /// ``stop()`` without blocking a cooperative thread.
    @discardableResult
    public func stopped() async throws -> Int32 {
        try await offload { self.stop() }
    }
}
