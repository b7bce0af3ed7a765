import GRDB
import Testing

@testable import SpendwallCore
@testable import SpendwallLedger

@Suite struct LedgerTests {
    func event(
        _ id: String, app: String = "a", cost: Int64 = 100, outcome: Outcome = .ok, time: Int64 = 1_000,
        tags: [String: String] = [:]
    ) -> SpendEvent {
        SpendEvent(
            requestID: id, timeMS: time, path: .sdk, provider: .openai, model: "gpt-4o", agent: "bot", app: app,
            peerPID: 42, peerUID: 1000, peerExe: "/usr/bin/python3", peerScript: "/x/reviewer.py", tags: tags,
            usage: Usage(inputTokens: 10, outputTokens: 5, cacheReadTokens: 2, cacheWriteTokens: 1, reasoningTokens: 3),
            costNanoUSD: cost, outcome: outcome)
    }

    @Test func appendIsIdempotentByRequestID() async throws {
        let ledger = try SQLiteLedger(writer: DatabaseQueue())
        let first = try ledger.append([event("r1"), event("r2")])
        #expect(first == [.inserted, .inserted])
        let again = try ledger.append([event("r1", cost: 999)])
        #expect(again == [.duplicate(existingCostNanoUSD: 100)])
        let row = try await ledger.event(requestID: "r1")
        #expect(row == event("r1"))
    }

    @Test func aLateReportReplacesItsUnreportedRow() async throws {
        let ledger = try SQLiteLedger(writer: DatabaseQueue())
        _ = try ledger.append([event("r1", cost: 500, outcome: .unreported)])
        #expect(try ledger.append([event("r1", cost: 120)]) == [.replacedUnreported(previousCostNanoUSD: 500)])
        #expect(try await ledger.event(requestID: "r1")?.costNanoUSD == 120)
    }

    @Test func spendGroupsAndTotals() async throws {
        let ledger = try SQLiteLedger(writer: DatabaseQueue())
        _ = try ledger.append([
            event("1", app: "x", cost: 300, tags: ["customer": "acme"]), event("2", app: "x", cost: 100),
            event("3", app: "y", cost: 600, tags: ["customer": "beta"]), event("old", app: "z", cost: 5, time: 1),
        ])
        let byApp = try await ledger.spend(by: .app, sinceMS: 500)
        #expect(byApp.rows.map(\.key) == ["y", "x"])
        #expect(byApp.rows[1].totals.calls == 2)
        #expect(byApp.total.costNanoUSD == 1000)
        #expect(byApp.total.usage.cacheReadTokens == 6)
        let byTag = try await ledger.spend(by: .tag, sinceMS: 0)
        #expect(byTag.rows.map(\.key) == ["customer=beta", "customer=acme"])
        let window = try await ledger.windowSpend(sinceMS: 500)
        #expect(window.map(\.costNanoUSD).reduce(0, +) == 1000)
        #expect(window.allSatisfy { $0.timeMS >= 1000 })
    }

    @Test func pendingReservationsRoundTrip() async throws {
        let ledger = try SQLiteLedger(writer: DatabaseQueue())
        try await ledger.savePendingReservations(["r1": "{}", "r2": "{\"a\":1}"])
        #expect(try await ledger.takePendingReservations() == ["r1": "{}", "r2": "{\"a\":1}"])
        #expect(try await ledger.takePendingReservations().isEmpty)
    }
}

@Suite struct SessionStoreTests {
    @Test func aSessionIsRecordedFinishedOnceAndSumsItsOwnRows() async throws {
        let ledger = try SQLiteLedger(writer: DatabaseQueue())
        let session = SessionRecord(
            id: "s-1", name: "t", command: ["claude", "--x"], cwd: "/w", gitBranch: "main", gitHead: "abc",
            agent: "bot", tags: ["k": "v"], budgetNanoUSD: 1000, budgetTokens: nil, terminal: "pty", pid: 7,
            startedMS: 5)
        try await ledger.insertSession(session)
        #expect(try await ledger.runningSessions().map(\.id) == ["s-1"])
        var rows: [SpendEvent] = []
        for (id, cost, outcome) in [("a", Int64(300), Outcome.ok), ("b", 200, .ok), ("c", 0, .blocked)] {
            let row = SpendEvent(
                requestID: id, timeMS: 10, path: .session, provider: .openai, model: "gpt-4o", agent: "bot",
                app: "x", session: "s-1", usage: Usage(inputTokens: 10, outputTokens: 5), costNanoUSD: cost,
                outcome: outcome)
            rows.append(row)
        }
        _ = try ledger.append(rows)
        let spend = try await ledger.sessionSpend(id: "s-1")
        #expect(spend.total.calls == 2)
        #expect(spend.total.costNanoUSD == 500)
        #expect(spend.byModel.map(\.model) == ["gpt-4o"])

        let ending = SessionEnding(
            endedMS: 9, exitCode: 130, exitSignal: nil, stopReason: .budgetExceeded, resumeCommand: "claude --resume x")
        let artifact = SessionArtifact(kind: "git_diff", createdMS: 9, truncated: true, content: Array("+x".utf8))
        #expect(try await ledger.finishSession(id: "s-1", ending: ending, artifacts: [artifact]))
        #expect(try await !ledger.finishSession(id: "s-1", ending: ending, artifacts: []))
        let stored = try #require(try await ledger.session(id: "s-1"))
        #expect(stored.command == ["claude", "--x"] && stored.tags == ["k": "v"])
        #expect(stored.stopReason == .budgetExceeded && stored.exitCode == 130 && !stored.isRunning)
        #expect(try await ledger.runningSessions().isEmpty)
        let listed = try await ledger.sessionArtifacts(id: "s-1", withContent: false)
        #expect(listed.map(\.size) == [2] && listed[0].content.isEmpty && listed[0].truncated)
        #expect(try await ledger.sessionArtifacts(id: "s-1", withContent: true)[0].content == Array("+x".utf8))
    }
}
