import Foundation
import SpendwallClient
import SpendwallTestSupport
import Testing

/// What a check answers while the ledger cannot write (another process holds SQLite's write
/// lock, as a database browser left in a transaction does), in each fail mode.
@Suite(.timeLimit(.minutes(2)), .serialized) struct FailModeTests {
    /// Holds an exclusive write lock on the ledger until ``release()``.
    final class LedgerLock {
        let process = Process()
        let input = Pipe()

        init(_ database: String) throws {
            let output = Pipe()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "python3", "-c",
                """
                import sqlite3, sys
                c = sqlite3.connect(sys.argv[1], isolation_level=None)
                c.execute("BEGIN EXCLUSIVE")
                print("locked", flush=True)
                sys.stdin.read()
                c.execute("ROLLBACK")
                """,
                database,
            ]
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            let line = output.fileHandleForReading.availableData
            guard String(decoding: line, as: UTF8.self).hasPrefix("locked") else {
                throw TestFailure("could not lock \(database)")
            }
        }

        func release() {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    func report(_ client: DaemonClient, _ check: [String: Any]) async throws -> (status: Int, json: [String: Any]) {
        let id = check["reservation_id"] as? String ?? ""
        return try await client.post("/v1/report", ["reservation_id": id, "usage": ["input_tokens": 10]])
    }

    @Test func openModeKeepsDecidingStrictCallsAndClosedModeRefuseAndBothRecover() async throws {
        for failMode in ["open", "closed"] {
            try await TestDaemon.with(files: ["spendwall.toml": "[policy]\nfail_mode = \"\(failMode)\"\n"]) { daemon in
                let client = daemon.client
                let database = daemon.dataDirectory.appendingPathComponent("spendwall.db").path
                let before = try await client.post("/v1/check", checkA).json
                let lock = try await offload { try LedgerLock(database) }
                // The report waits out SQLite's busy timeout, then is refused: the SDK spools it.
                let refused = try await report(client, before)
                #expect(refused.status == 503, "\(refused.json)")
                #expect((refused.json["error"] as? [String: Any])?["code"] as? String == "unavailable")
                let health = try await client.getJSON("/v1/health").json
                #expect(health["status"] as? String == "degraded", "\(health)")

                var strict = checkB
                strict["mode"] = "strict"
                let strictAnswer = try await client.post("/v1/check", strict)
                #expect(strictAnswer.status == 503, "\(strictAnswer.json)")
                let error = strictAnswer.json["error"] as? [String: Any]
                #expect(error?["fail_closed"] as? Bool == true)
                #expect((error?["message"] as? String)?.contains("strict mode") == true, "\(error ?? [:])")

                let plain = try await client.post("/v1/check", checkB)
                if failMode == "open" {
                    #expect(plain.json["decision"] as? String == "allow", "\(plain.json)")
                } else {
                    #expect(plain.status == 503, "\(plain.json)")
                    let message = (plain.json["error"] as? [String: Any])?["message"] as? String ?? ""
                    #expect(message.contains(#"policy.fail_mode is "closed""#), "\(message)")
                }

                // Writes work again: the refused report's row, kept by the daemon, is committed;
                // a retry finds it recorded once, and checks are decided as usual.
                lock.release()
                for _ in 0..<100 {
                    if try await client.getJSON("/v1/health").json["status"] as? String == "ok" { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(try await client.getJSON("/v1/health").json["status"] as? String == "ok")
                let retried = try await report(client, before)
                #expect(retried.status == 200, "\(retried.json)")
                #expect(retried.json["duplicate"] as? Bool == true, "\(retried.json)")
                let rows = try await client.getJSON("/v1/ledger?limit=100").json["rows"] as? [[String: Any]] ?? []
                let id = before["reservation_id"] as? String
                #expect(rows.filter { $0["request_id"] as? String == id }.count == 1, "\(rows)")
                #expect(try await client.post("/v1/check", strict).json["decision"] as? String == "allow")
            }
        }
    }
}
