import Foundation
import SpendwallClient
import SpendwallTestSupport
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(3)), .serialized) struct LifecycleTests {
    @Test func everyAcknowledgedReportSurvivesSIGTERMMidLoad() async throws {
        let daemon = try TestDaemon()
        defer { daemon.stop(); daemon.cleanUp() }
        try await daemon.start()
        let client = daemon.client
        let acknowledged = Mutex<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for i in 0..<100 {
                        guard
                            let check = try? await client.post(
                                "/v1/check",
                                [
                                    "provider": "openai", "model": "gpt-4o", "agent": "w\(worker)",
                                    "request": ["max_tokens": 10],
                                ]),
                            let id = check.json["reservation_id"] as? String
                        else { return }
                        guard
                            let report = try? await client.post(
                                "/v1/report",
                                ["reservation_id": id, "usage": ["input_tokens": i + 1, "output_tokens": 1]]),
                            report.status == 200
                        else { return }
                        acknowledged.withLock { $0.append(id) }
                    }
                }
            }
            group.addTask {
                while acknowledged.withLock({ $0.count }) < 150 { try await Task.sleep(for: .milliseconds(5)) }
                try await daemon.stopped()
            }
            try await group.waitForAll()
        }
        let acked = Set(acknowledged.withLock { $0 })
        #expect(acked.count >= 150)
        #expect(daemon.process?.terminationStatus == 0, "\(daemon.log)")
        try await daemon.start()
        let rows = try await client.getJSON("/v1/ledger?limit=1000").json["rows"] as? [[String: Any]] ?? []
        let stored = Set(rows.compactMap { $0["request_id"] as? String })
        #expect(acked.isSubset(of: stored), "missing: \(acked.subtracting(stored).count)")
    }

    @Test func windowsAndReservationsAreRebuiltAfterARestart() async throws {
        let daemon = try TestDaemon()
        defer { daemon.stop(); daemon.cleanUp() }
        try daemon.writeConfig("caps.toml", dollarCapToml)
        try await daemon.start()
        let client = daemon.client
        // $0.40 spent, $0.05 held by a reservation still in flight at the stop.
        let first = try await client.post(
            "/v1/check", ["provider": "openai", "model": "gpt-4o", "request": fiveCentRequest]
        ).json
        _ = try await client.post(
            "/v1/report", ["reservation_id": first["reservation_id"]!, "usage": ["output_tokens": 40_000]])
        let held = try await client.post(
            "/v1/check", ["provider": "openai", "model": "gpt-4o", "request": fiveCentRequest]
        ).json
        try await daemon.stopped()
        try await daemon.start()
        let key =
            (((try await client.getJSON("/v1/policy/snapshot").json["caps"]) as? [[String: Any]])?.first?["keys"]
            as? [[String: Any]])?.first
        #expect(int64(key?["spent_nanousd"]) == 400_000_000)
        #expect(int64(key?["reserved_nanousd"]) == 50_000_000)
        let report = try await client.post(
            "/v1/report", ["reservation_id": held["reservation_id"]!, "usage": ["output_tokens": 1000]])
        #expect(report.status == 200)
    }

    @Test func theCLIExitsThreeWithAHintWhenNoDaemonRuns() async throws {
        let daemon = try TestDaemon()
        defer { daemon.cleanUp() }
        for command in [["status"], ["ls"], ["caps", "ls"]] {
            let result = try await TestDaemon.run(TestDaemon.binaryPath, command, environment: daemon.environment)
            #expect(result.status == 3, "\(command)")
            #expect(result.err.contains("spendwall start"), "\(command): \(result.err)")
        }
        let usage = try await TestDaemon.run(
            TestDaemon.binaryPath, ["ls", "--by", "planet"], environment: daemon.environment)
        #expect(usage.status == 2)
        let doctor = try await TestDaemon.run(TestDaemon.binaryPath, ["doctor"], environment: daemon.environment)
        #expect(doctor.status == 1)
        #expect(doctor.out.contains("not running"))
    }

    @Test func initNeverClobbersAndStartStopWork() async throws {
        let daemon = try TestDaemon()
        defer {
            _ = try? TestDaemon.runBlocking(TestDaemon.binaryPath, ["stop"], environment: daemon.environment);
            daemon.cleanUp()
        }
        try daemon.writeConfig("caps.toml", "# mine\n")
        let initialized = try await daemon.cli("init")
        #expect(initialized.status == 0)
        #expect(initialized.out.contains("kept"))
        #expect(
            try String(contentsOf: daemon.configDirectory.appendingPathComponent("caps.toml"), encoding: .utf8)
                == "# mine\n")
        #expect(
            FileManager.default.fileExists(atPath: daemon.configDirectory.appendingPathComponent("labels.toml").path))
        let started = try await daemon.cli("start")
        #expect(started.status == 0, "\(started.err)")
        #expect(try await daemon.client.get("/v1/health").status == 200)
        let status = try await daemon.cli("status")
        #expect(status.status == 0)
        #expect(status.out.contains("is running"))
        let doctor = try await daemon.cli("doctor")
        #expect(doctor.status == 0, "\(doctor.out)")
        #expect(doctor.out.contains("**Healthy.**"))
        let stopped = try await daemon.cli("stop")
        #expect(stopped.status == 0)
        #expect(try await daemon.cli("status").status == 3)
    }
}
