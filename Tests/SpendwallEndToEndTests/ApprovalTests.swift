import Foundation
import SpendwallClient
import SpendwallTestSupport
import Testing

@Suite(.timeLimit(.minutes(2)), .serialized) struct ApprovalTests {
    static let caps = """
        [[cap]]
        name = "ask-me"
        scope = { global = true }
        window = "1d"
        limit_usd = 0.10
        action = "approve"
        """
    /// Long enough that a person (here, the CLI on a loaded machine) always decides in time.
    static let settings = """
        [policy]
        approval_timeout = "60s"
        """
    static let shortTimeout = """
        [policy]
        approval_timeout = "2s"
        """

    /// Starts a check that will be held, and returns its task and the approval id once listed.
    func held(_ daemon: TestDaemon) async throws -> (Task<[String: Any], any Error>, String) {
        let client = daemon.client
        let task = Task { () throws -> [String: Any] in
            let answer = try await client.post("/v1/check", checkA).json
            nonisolated(unsafe) let result = answer
            return result
        }
        for _ in 0..<100 {
            let pending = try await client.getJSON("/v1/approvals").json["approvals"] as? [[String: Any]] ?? []
            if let id = pending.first?["id"] as? String { return (task, id) }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("no approval appeared")
    }

    @Test func approvedAndDeniedChecksAreAnsweredAndRecorded() async throws {
        try await TestDaemon.with(caps: Self.caps, files: ["spendwall.toml": Self.settings]) { daemon in
            let client = daemon.client
            for _ in 0..<2 {
                #expect(try await client.post("/v1/check", checkA).json["decision"] as? String == "allow")
            }

            // Approved from the CLI: the held check is released with a reservation.
            var (task, id) = try await held(daemon)
            let listed = try await daemon.cli("approvals", "ls")
            #expect(listed.out.contains(id), "\(listed.out)")
            let doctor = try await daemon.cli("doctor")
            #expect(doctor.out.contains("- pending approvals: 1 "), "\(doctor.out)")
            #expect(doctor.out.contains(id), "\(doctor.out)")
            #expect(try await daemon.cli("approvals", "approve", id).status == 0)
            let approved = try await task.value
            #expect(approved["decision"] as? String == "allow")
            #expect(approved["reservation_id"] is String)
            #expect(try await daemon.cli("approvals", "approve", id).status == 1, "a decided approval cannot change")

            // Denied: a structured approval_denied answer.
            (task, id) = try await held(daemon)
            #expect(try await daemon.cli("approvals", "deny", id, "--reason", "too much").status == 0)
            let denied = try await task.value
            #expect(denied["decision"] as? String == "approval_denied")
            #expect((denied["error"] as? [String: Any])?["code"] as? String == "approval_denied")
            #expect((denied["reason"] as? String)?.contains("too much") == true)

            let all = try await client.getJSON("/v1/approvals?status=all").json["approvals"] as? [[String: Any]] ?? []
            #expect(Set(all.compactMap { $0["status"] as? String }) == ["approved", "denied"])
            #expect(all.allSatisfy { $0["cap"] as? String == "ask-me" && int64($0["estimated_nanousd"]) == 50_000_000 })
            #expect(try await client.post("/v1/approvals/nope/resolve", ["decision": "approve"]).status == 404)
            #expect(try await client.post("/v1/approvals/\(id)/resolve", ["decision": "maybe"]).status == 400)
        }
    }

    @Test func nobodyAnsweringIsADenialWhenTheTimeoutPasses() async throws {
        try await TestDaemon.with(caps: Self.caps, files: ["spendwall.toml": Self.shortTimeout]) { daemon in
            for _ in 0..<2 {
                #expect(try await daemon.client.post("/v1/check", checkA).json["decision"] as? String == "allow")
            }
            let (task, id) = try await held(daemon)
            let timedOut = try await task.value
            #expect(timedOut["decision"] as? String == "approval_denied")
            #expect((timedOut["reason"] as? String)?.contains("no decision within 2s") == true, "\(timedOut)")
            #expect(timedOut["approval_id"] as? String == id)
            let all =
                try await daemon.client.getJSON("/v1/approvals?status=all").json["approvals"] as? [[String: Any]] ?? []
            #expect(all.map { $0["status"] as? String } == ["expired"])
        }
    }

    @Test func aPendingApprovalSurvivesAStopAsExpiredWithItsReason() async throws {
        let daemon = try TestDaemon()
        defer { daemon.stop(); daemon.cleanUp() }
        try daemon.writeConfig("caps.toml", Self.caps.replacingOccurrences(of: "0.10", with: "0.01"))
        try await daemon.start()
        let (task, id) = try await held(daemon)
        try await daemon.stopped()
        let answer = try await task.value
        #expect(answer["decision"] as? String == "approval_denied")
        try await daemon.start()
        let all =
            try await daemon.client.getJSON("/v1/approvals?status=all").json["approvals"] as? [[String: Any]] ?? []
        let row = all.first { $0["id"] as? String == id }
        #expect(row?["status"] as? String == "expired")
        #expect((row?["resolution"] as? String)?.contains("stopping") == true, "\(String(describing: row))")
    }
}
