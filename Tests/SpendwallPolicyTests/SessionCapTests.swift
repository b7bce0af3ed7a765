import Testing

@testable import SpendwallCore
@testable import SpendwallPolicy
@testable import SpendwallPricing

/// A `spendwall run` session's budget: a cap on that session's calls alone, kept across a
/// reload of caps.toml, counting what the session spent before a restart.
@Suite struct SessionCapTests {
    func call(session: String?) -> CallAttributes {
        CallAttributes(provider: .openai, model: "test-model", agent: "a", session: session)
    }

    @Test func aSessionCapHoldsForThatSessionOnly() {
        let engine = PolicyEngine(caps: [], pricing: testPricing, clock: ManualClock())
        engine.addSessionCap(.session("s-1", limitNanoUSD: 70_000_000, limitTokens: nil))
        guard case .allow = engine.check(call(session: "s-1"), estimate: fiveCents) else {
            Issue.record("the first $0.05 fits in $0.07"); return
        }
        guard case .block(let status, _) = engine.check(call(session: "s-1"), estimate: fiveCents) else {
            Issue.record("the second $0.05 does not"); return
        }
        #expect(status.cap.name == "session:s-1")
        #expect(Cap.sessionID(ofCapName: status.cap.name) == "s-1")
        // Another session, and calls with no session, are not held by it.
        for other in [call(session: "s-2"), call(session: nil)] {
            guard case .allow = engine.check(other, estimate: fiveCents) else {
                Issue.record("\(other) is not in session s-1"); return
            }
        }
    }

    @Test func spendBeforeARestartCountsAndAReloadKeepsTheCap() {
        let engine = PolicyEngine(caps: [dollarCap(100)], pricing: testPricing, clock: ManualClock())
        engine.addSessionCap(
            .session("s-1", limitNanoUSD: 100_000_000, limitTokens: nil), spentNanoUSD: 60_000_000)
        engine.reconfigure(caps: [dollarCap(100)], pricing: testPricing, history: [])
        #expect(engine.currentCaps.map(\.name) == ["cap", "session:s-1"])
        // $0.06 spent + $0.05 > $0.10.
        guard case .block = engine.check(call(session: "s-1"), estimate: fiveCents) else {
            Issue.record("spend from before counts"); return
        }
        engine.removeSessionCap(named: "session:s-1")
        guard case .allow = engine.check(call(session: "s-1"), estimate: fiveCents) else {
            Issue.record("an ended session's cap is gone"); return
        }
        #expect(engine.currentCaps.map(\.name) == ["cap"])
    }

    @Test func aTokenBudgetBlocksToo() {
        let engine = PolicyEngine(caps: [], pricing: testPricing, clock: ManualClock())
        engine.addSessionCap(.session("s-t", limitNanoUSD: nil, limitTokens: 4_000))
        guard case .block = engine.check(call(session: "s-t"), estimate: fiveCents) else {
            Issue.record("5,000 reserved tokens exceed 4,000"); return
        }
    }
}
