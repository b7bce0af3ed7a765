import Foundation
import SpendwallClient
import SpendwallTestSupport
import Testing

/// A datagram socket standing in for systemd's NOTIFY_SOCKET.
final class NotifyListener {
    let path: String
    let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw TestFailure("bind \(path): \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Reads datagrams until one contains `state`; returns every message read.
    func wait(for state: String) -> [String] {
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return messages }
            let message = String(decoding: buffer[0..<n], as: UTF8.self)
            messages.append(message)
            if message.split(separator: "\n").contains(Substring(state)) { return messages }
        }
    }
}

@Suite(.timeLimit(.minutes(2)), .serialized) struct SystemdTests {
    @Test func readyAndStoppingAreSentToNotifySocket() async throws {
        let daemon = try TestDaemon()
        defer { daemon.stop(); daemon.cleanUp() }
        let listener = try NotifyListener(path: daemon.root.appendingPathComponent("notify.sock").path)
        try await daemon.start(extraEnvironment: ["NOTIFY_SOCKET": listener.path])
        let ready = try await offload { listener.wait(for: "READY=1") }
        #expect(ready.last?.contains("READY=1") == true)
        #expect(try await daemon.stopped() == 0)
        let stopping = try await offload { listener.wait(for: "STOPPING=1") }
        #expect(stopping.last?.contains("STOPPING=1") == true)
    }

    @Test func theDaemonServesASocketPassedBySocketActivation() async throws {
        let activate = "/usr/bin/systemd-socket-activate"
        try #require(
            FileManager.default.isExecutableFile(atPath: activate),
            "systemd-socket-activate is missing (apt-get install systemd)")
        let daemon = try TestDaemon()
        defer { daemon.cleanUp() }
        let directory = (daemon.socketPath as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: activate)
        process.arguments = ["-l", daemon.socketPath, TestDaemon.binaryPath, "daemon"]
        var env = daemon.environment
        env["SPENDWALL_SOCKET"] = daemon.root.appendingPathComponent("unused/never.sock").path
        process.environment = env
        let log = Pipe()
        process.standardError = log
        process.standardOutput = log
        try process.run()
        defer {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
        var health: [String: Any] = [:]
        for _ in 0..<200 {
            if let answer = try? await daemon.client.getJSON("/v1/health"), answer.status == 200 {
                health = answer.json
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(health["socket_activated"] as? Bool == true)
        #expect(try FileManager.default.attributesOfItem(atPath: daemon.socketPath)[.posixPermissions] as? Int == 0o600)
        #expect(try FileManager.default.attributesOfItem(atPath: directory)[.posixPermissions] as? Int == 0o700)
        #expect(!FileManager.default.fileExists(atPath: env["SPENDWALL_SOCKET"]!))
        let check = try await daemon.client.post("/v1/check", ["provider": "openai", "model": "gpt-4o"])
        #expect(check.json["decision"] as? String == "allow")
    }

    @Test func installedUnitsVerifyAndMatchTheCheckedInTemplates() async throws {
        let daemon = try TestDaemon()
        defer { daemon.cleanUp() }
        let units = daemon.root.appendingPathComponent("units")
        let install = try await TestDaemon.run(
            TestDaemon.binaryPath, ["service", "install", "--directory", units.path], environment: daemon.environment)
        #expect(install.status == 0, "\(install.err)")
        #expect(install.out.contains("systemctl --user enable --now spendwall.socket"))
        let service = try String(contentsOf: units.appendingPathComponent("spendwall.service"), encoding: .utf8)
        #expect(service.contains("ExecStart=\(TestDaemon.binaryPath) daemon"))
        #expect(service.contains("Type=notify"))

        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let template = try String(contentsOf: repo.appendingPathComponent("systemd/spendwall.service"), encoding: .utf8)
        #expect(template.replacingOccurrences(of: "@SPENDWALL_BIN@", with: TestDaemon.binaryPath) == service)
        let socketTemplate = try String(
            contentsOf: repo.appendingPathComponent("systemd/spendwall.socket"), encoding: .utf8)
        #expect(
            try String(contentsOf: units.appendingPathComponent("spendwall.socket"), encoding: .utf8) == socketTemplate)

        let verify = try await TestDaemon.run(
            "/usr/bin/systemd-analyze",
            [
                "verify", "--man=no", units.appendingPathComponent("spendwall.socket").path,
                units.appendingPathComponent("spendwall.service").path,
            ])
        #expect(verify.status == 0, "\(verify.out)\(verify.err)")
    }
}
