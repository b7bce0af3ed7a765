import Foundation
import SpendwallClient
import SpendwallTestSupport
import Testing

/// The socket API of sessions with the SDK path: a session's budget refuses its own checks
/// only, and `SessionStop` tells `spendwall run` to stop for the budget and for a kill switch.
@Suite(.timeLimit(.minutes(2))) struct SessionAPITests {
    @Test func aSessionBudgetRefusesItsOwnChecksAndSaysStop() async throws {
        try await TestDaemon.with { daemon in
            let client = daemon.client
            let (status, started) = try await client.post(
                "/v1/sessions", ["command": ["agent"], "budget_nanousd": 70_000_000, "agent": "runner"])
            #expect(status == 200)
            let id = try #require((started["session"] as? [String: Any])?["id"] as? String)
            #expect((started["openai_base_url"] as? String)?.hasSuffix("/session/\(id)/v1") == true)
            let log = EventLog()
            let follower = Task { try await log.follow(client, kinds: ["SessionStop"]) }
            defer { follower.cancel() }
            try await log.wait { log.isOpen }

            var check = checkA
            check["session"] = id
            #expect(try await client.post("/v1/check", check).json["decision"] as? String == "allow")
            let refused = try await client.post("/v1/check", check).json
            #expect(refused["decision"] as? String == "block")
            #expect((refused["cap"] as? [String: Any])?["name"] as? String == "session:\(id)")
            try await log.wait { log.count("SessionStop") == 1 }
            let stop = log.all("SessionStop").first?["data"] as? [String: Any]
            #expect(stop?["session"] as? String == id)
            #expect(stop?["reason"] as? String == "budget_exceeded")

            // Another session, and a call with none, are not held by this budget.
            var other = checkA
            other["session"] = "s-other"
            #expect(try await client.post("/v1/check", other).json["decision"] as? String == "allow")
            #expect(try await client.post("/v1/check", checkA).json["decision"] as? String == "allow")

            // The global switch stops every running session.
            #expect(try await client.post("/v1/kill", [:]).status == 200)
            try await log.wait { log.count("SessionStop") == 2 }
            #expect((log.all("SessionStop").last?["data"] as? [String: Any])?["reason"] as? String == "killed")
            #expect(try await client.post("/v1/kill", ["on": false]).status == 200)

            // Finished, the session's cap is gone and its record says how it ended.
            let finished = try await client.post("/v1/sessions/\(id)/finish", ["stop_reason": "budget_exceeded"])
            #expect(finished.status == 200)
            let snapshot = try await client.getJSON("/v1/policy/snapshot").json
            let caps = (snapshot["caps"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(!caps.contains("session:\(id)"))
            let shown = try await client.getJSON("/v1/sessions/\(id)").json
            let session = shown["session"] as? [String: Any] ?? [:]
            #expect(session["status"] as? String == "ended")
            #expect(session["stop_reason"] as? String == "budget_exceeded")
            #expect(int64((session["spend"] as? [String: Any])?["calls"]) == 0)  // checks never reported
        }
    }
}
