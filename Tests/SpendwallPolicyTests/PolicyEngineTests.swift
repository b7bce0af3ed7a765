import Foundation
import Synchronization
import Testing

@testable import SpendwallCore
@testable import SpendwallPolicy
@testable import SpendwallPricing

final class ManualClock: WallClock {
    let now = Mutex<Int64>(1_800_000_000_000)
    func nowMS() -> Int64 { now.withLock { $0 } }
    func advance(_ ms: Int64) { now.withLock { $0 += ms } }
}

/// A model at $10 per million output tokens: 5,000 output tokens reserve exactly $0.05.
let testPricing = PriceTable(entries: [
    "test-model": ModelPrice(inputPerMillion: 1_000_000_000, outputPerMillion: 10_000_000_000)
])
let fiveCents = CallEstimate(inputTokens: 0, maxOutputTokens: 5000)

func dollarCap(_ dollars: Double, scope: CapScope = .global, window: CapWindow = .rolling(milliseconds: 86_400_000))
    -> Cap
{
    Cap(name: "cap", scope: scope, window: window, limitNanoUSD: Money.nanos(fromDollars: dollars)!, action: .block)
}

@Suite struct PolicyEngineTests {
    let call = CallAttributes(provider: .openai, model: "test-model", agent: "a")

    @Test func sixtyFourConcurrentChecksAdmitExactlyTwentyAgainstOneDollar() async throws {
        let engine = PolicyEngine(caps: [dollarCap(1.0)], pricing: testPricing, clock: ManualClock())
        let decisions = await withTaskGroup(of: CheckDecision.self) { group in
            for _ in 0..<64 { group.addTask { engine.check(call, estimate: fiveCents) } }
            return await group.reduce(into: [CheckDecision]()) { $0.append($1) }
        }
        let allowed = decisions.compactMap { if case .allow(let r) = $0 { r } else { nil } }
        #expect(allowed.count == 20)
        #expect(allowed.allSatisfy { $0.reservedNanoUSD == 50_000_000 })

        // Settle each at a real cost of $0.01: $0.20 spent, $0.80 free again = 16 more calls.
        for reservation in allowed {
            let settlement = engine.settle(reservation.id, usage: Usage(outputTokens: 1000))
            #expect(settlement?.costNanoUSD == 10_000_000)
        }
        var again = 0
        for _ in 0..<64 {
            if case .allow = engine.check(call, estimate: fiveCents) { again += 1 }
        }
        #expect(again == 16)
        let key = engine.snapshot().caps[0].keys[0]
        #expect(key.spentNanoUSD == 200_000_000)
        #expect(key.reservedNanoUSD == 800_000_000)
    }

    @Test func blockNamesTheCapAndWhatIsLeft() async {
        let engine = PolicyEngine(caps: [dollarCap(0.07)], pricing: testPricing, clock: ManualClock())
        guard case .allow = engine.check(call, estimate: fiveCents) else {
            Issue.record("first call should pass"); return
        }
        guard case .block(let status, let reason) = engine.check(call, estimate: fiveCents) else {
            Issue.record("second call should be blocked")
            return
        }
        #expect(status.cap.name == "cap")
        #expect(status.remainingNanoUSD == 20_000_000)
        #expect(reason.contains("$0.07"))
    }

    @Test func alertCapsNeverBlockButTrackSpend() async {
        var cap = dollarCap(0.01)
        cap.action = .alert
        let engine = PolicyEngine(caps: [cap], pricing: testPricing, clock: ManualClock())
        for _ in 0..<3 {
            guard case .allow = engine.check(call, estimate: fiveCents) else {
                Issue.record("alert cap blocked"); return
            }
        }
        #expect(engine.snapshot().caps[0].keys[0].reservedNanoUSD == 150_000_000)
    }

    @Test func tokenLimitsBlockToo() async {
        let cap = Cap(name: "tokens", scope: .agent(.exact("a")), window: .calendar(.day), limitTokens: 12_000)
        let engine = PolicyEngine(caps: [cap], pricing: testPricing, clock: ManualClock())
        guard case .allow = engine.check(call, estimate: fiveCents) else { Issue.record("first"); return }
        guard case .allow = engine.check(call, estimate: fiveCents) else { Issue.record("second"); return }
        guard case .block = engine.check(call, estimate: fiveCents) else { Issue.record("third should block"); return }
        // Another agent is not covered by this cap.
        guard
            case .allow = engine.check(
                CallAttributes(provider: .openai, model: "test-model", agent: "b"), estimate: fiveCents)
        else {
            Issue.record("other agent blocked")
            return
        }
    }

    @Test func perValueScopesGiveEachValueItsOwnBudget() async {
        let engine = PolicyEngine(
            caps: [dollarCap(0.05, scope: .session(.each))], pricing: testPricing, clock: ManualClock())
        for session in ["s1", "s2"] {
            var attributes = call
            attributes.session = session
            guard case .allow = engine.check(attributes, estimate: fiveCents) else {
                Issue.record("\(session) first"); return
            }
            guard case .block = engine.check(attributes, estimate: fiveCents) else {
                Issue.record("\(session) second"); return
            }
        }
    }

    @Test func unreportedReservationsExpireAtTheirReservedCost() async {
        let clock = ManualClock()
        let engine = PolicyEngine(
            caps: [dollarCap(1.0)], pricing: testPricing, settings: PolicySettings(reservationTTLMS: 60_000),
            clock: clock)
        guard case .allow(let reservation) = engine.check(call, estimate: fiveCents) else {
            Issue.record("allow"); return
        }
        #expect(engine.expireReservations().isEmpty)
        clock.advance(60_000)
        let expired = engine.expireReservations()
        #expect(expired.map(\.id) == [reservation.id])
        let key = engine.snapshot().caps[0].keys[0]
        #expect(key.reservedNanoUSD == 0)
        #expect(key.spentNanoUSD == 50_000_000)
        #expect(engine.settle(reservation.id, usage: Usage()) == nil)
    }

    @Test func rollingWindowsForgetOldSpend() async {
        let clock = ManualClock()
        let engine = PolicyEngine(
            caps: [dollarCap(0.05, window: .rolling(milliseconds: 3_600_000))], pricing: testPricing, clock: clock)
        guard case .allow(let r) = engine.check(call, estimate: fiveCents) else { Issue.record("allow"); return }
        _ = engine.settle(r.id, usage: Usage(outputTokens: 5000))
        guard case .block = engine.check(call, estimate: fiveCents) else { Issue.record("should block"); return }
        clock.advance(3_600_000 + 3_600_000 / 240 + 1)
        guard case .allow = engine.check(call, estimate: fiveCents) else {
            Issue.record("should allow after the window"); return
        }
    }

    @Test func seedAndRestoreRebuildState() async {
        let clock = ManualClock()
        let engine = PolicyEngine(caps: [dollarCap(1.0)], pricing: testPricing, clock: clock)
        engine.seed([SpendRecord(attributes: call, costNanoUSD: 950_000_000, tokens: 10, timeMS: clock.nowMS() - 1000)])
        guard case .allow(let reservation) = engine.check(call, estimate: fiveCents) else {
            Issue.record("allow"); return
        }
        let saved = engine.inFlight()
        let restarted = PolicyEngine(caps: [dollarCap(1.0)], pricing: testPricing, clock: clock)
        restarted.seed([
            SpendRecord(attributes: call, costNanoUSD: 950_000_000, tokens: 10, timeMS: clock.nowMS() - 1000)
        ])
        restarted.restore(saved)
        guard case .block = restarted.check(call, estimate: fiveCents) else {
            Issue.record("restored reservation not held"); return
        }
        #expect(restarted.settle(reservation.id, usage: Usage(outputTokens: 100)) != nil)
    }

    @Test func reloadKeepsWindowsOfUnchangedCapsAndRebuildsChangedOnes() {
        let clock = ManualClock()
        let engine = PolicyEngine(caps: [dollarCap(1.0)], pricing: testPricing, clock: clock)
        guard case .allow(let settled) = engine.check(call, estimate: fiveCents) else { Issue.record("allow"); return }
        // $0.04 settled (perhaps not yet committed to the ledger), then $0.05 in flight.
        _ = engine.settle(settled.id, usage: Usage(outputTokens: 4000))
        guard case .allow = engine.check(call, estimate: fiveCents) else { Issue.record("allow"); return }
        engine.reconfigure(caps: [dollarCap(1.0)], pricing: testPricing, history: [])
        var key = engine.snapshot().caps[0].keys[0]
        #expect(key.spentNanoUSD == 40_000_000)
        #expect(key.reservedNanoUSD == 50_000_000)
        let history = [
            SpendRecord(attributes: call, costNanoUSD: 30_000_000, tokens: 3000, timeMS: clock.nowMS() - 1000)
        ]
        engine.reconfigure(
            caps: [dollarCap(1.0, window: .rolling(milliseconds: 3_600_000))], pricing: testPricing, history: history)
        key = engine.snapshot().caps[0].keys[0]
        #expect(key.spentNanoUSD == 30_000_000)
        #expect(key.reservedNanoUSD == 50_000_000)
    }

    @Test func anApproveCapAsksOnlyAboutCallsABlockCapWouldLetThrough() {
        var ask = dollarCap(0.05)
        ask.name = "ask"
        ask.action = .approve
        var hard = dollarCap(0.10)
        hard.name = "hard"
        let engine = PolicyEngine(caps: [ask, hard], pricing: testPricing, clock: ManualClock())
        guard case .allow = engine.check(call, estimate: fiveCents) else { Issue.record("first fits"); return }
        guard case .approvalRequired(let status, _) = engine.check(call, estimate: fiveCents) else {
            Issue.record("second needs approval")
            return
        }
        #expect(status.cap.name == "ask")
        #expect(engine.snapshot().caps[0].keys[0].reservedNanoUSD == 50_000_000, "asking reserves nothing")
        guard case .allow = engine.check(call, estimate: fiveCents, approved: ["ask"]) else {
            Issue.record("approved")
            return
        }
        // Now the block cap is full too: it answers first, nobody is asked.
        guard case .block(let blocked, _) = engine.check(call, estimate: fiveCents, approved: []) else {
            Issue.record("block cap decides first")
            return
        }
        #expect(blocked.cap.name == "hard")
    }

    @Test func aKillSwitchRefusesOnlyItsScope() {
        let engine = PolicyEngine(caps: [], pricing: testPricing, clock: ManualClock())
        #expect(engine.setKill(.agent("a"), on: true))
        #expect(!engine.setKill(.agent("a"), on: true))
        guard case .killed(.agent("a")) = engine.check(call, estimate: fiveCents) else {
            Issue.record("killed"); return
        }
        let other = CallAttributes(provider: .openai, model: "test-model", agent: "b", session: "s")
        guard case .allow = engine.check(other, estimate: fiveCents) else { Issue.record("b allowed"); return }
        engine.setKill(.session("s"), on: true)
        guard case .killed = engine.check(other, estimate: fiveCents) else { Issue.record("session killed"); return }
        engine.setKill(.session("s"), on: false)
        engine.setKill(.global, on: true)
        guard case .killed(.global) = engine.check(other, estimate: fiveCents) else { Issue.record("global"); return }
    }
}
