import Testing

@testable import SpendwallCore
@testable import SpendwallPolicy
@testable import SpendwallPricing

@Suite struct PreapprovalTests {
    let coder = CallAttributes(provider: .openai, model: "test-model", agent: "coder")
    let other = CallAttributes(provider: .openai, model: "test-model", agent: "other")

    func key(_ engine: PolicyEngine) -> CapStatus { engine.snapshot().caps[0].keys[0] }

    func granted(_ decision: PreapprovalDecision) -> Preapproval? {
        if case .granted(let p) = decision { return p }
        return nil
    }

    @Test func callsDrawThePreapprovalDownInsteadOfReservingAgain() throws {
        let engine = PolicyEngine(caps: [dollarCap(1.0)], pricing: testPricing, clock: ManualClock())
        let p = try #require(
            granted(engine.preapprove(coder, amountNanoUSD: 500_000_000, reason: "refactor", ttlMS: 3_600_000)))
        #expect(key(engine).reservedNanoUSD == 500_000_000)
        for settled in 0..<10 {
            guard case .allow(let r) = engine.check(coder, estimate: fiveCents) else {
                Issue.record("refused")
                return
            }
            #expect(r.drawsFrom == p.id && r.holds.isEmpty)
            // Nothing reserved on top: the hold shrinks only by what settled calls really cost.
            #expect(key(engine).reservedNanoUSD == 500_000_000 - Int64(settled) * 10_000_000)
            _ = engine.settle(r.id, usage: Usage(outputTokens: 1000))  // $0.01
        }
        #expect(key(engine).spentNanoUSD == 100_000_000)
        #expect(key(engine).reservedNanoUSD == 400_000_000)
        let left = try #require(engine.preapprovals(agent: "coder").first)
        #expect(left.remainingNanoUSD == 400_000_000 && left.calls == 10)
        // Another agent reserves as usual, against what the pre-approval leaves free.
        var others = 0
        while case .allow = engine.check(other, estimate: fiveCents) { others += 1 }
        #expect(others == 10)  // $0.50 free of the $1 cap: 10 × $0.05
    }

    @Test func releasingOrExpiringGivesTheRestBack() throws {
        let clock = ManualClock()
        let engine = PolicyEngine(caps: [dollarCap(1.0)], pricing: testPricing, clock: clock)
        let p = try #require(granted(engine.preapprove(coder, amountNanoUSD: 300_000_000, reason: "a", ttlMS: 60_000)))
        guard case .allow(let inFlight) = engine.check(coder, estimate: fiveCents) else {
            Issue.record("refused")
            return
        }
        #expect(engine.releasePreapproval(p.id) != nil)
        #expect(engine.releasePreapproval(p.id) == nil)
        #expect(key(engine).reservedNanoUSD == 50_000_000)  // the call in flight keeps its share
        _ = engine.settle(inFlight.id, usage: Usage(outputTokens: 2000))
        #expect(key(engine).reservedNanoUSD == 0 && key(engine).spentNanoUSD == 20_000_000)
        #expect(engine.preapprovals().isEmpty)

        _ = try #require(granted(engine.preapprove(coder, amountNanoUSD: 300_000_000, reason: "b", ttlMS: 60_000)))
        clock.advance(60_001)
        _ = engine.expireReservations()
        #expect(key(engine).reservedNanoUSD == 0)
        #expect(engine.preapprovals().isEmpty)
        // Expired: the agent's calls reserve as usual again.
        guard case .allow(let r) = engine.check(coder, estimate: fiveCents) else {
            Issue.record("refused")
            return
        }
        #expect(r.drawsFrom == nil && r.holds.count == 1)
    }

    @Test func aPreapprovalIsDecidedLikeACall() {
        let engine = PolicyEngine(caps: [dollarCap(1.0)], pricing: testPricing, clock: ManualClock())
        guard case .block(_, let reason) = engine.preapprove(coder, amountNanoUSD: 2_000_000_000, reason: "x", ttlMS: 1)
        else {
            Issue.record("not blocked")
            return
        }
        #expect(reason.contains("would be exceeded"))
        engine.setKill(.agent("coder"), on: true)
        guard case .killed = engine.preapprove(coder, amountNanoUSD: 1, reason: "x", ttlMS: 1) else {
            Issue.record("not killed")
            return
        }
    }

    @Test func callsBeyondWhatIsLeftReserveAsUsual() throws {
        let engine = PolicyEngine(caps: [dollarCap(1.0)], pricing: testPricing, clock: ManualClock())
        _ = try #require(granted(engine.preapprove(coder, amountNanoUSD: 70_000_000, reason: "x", ttlMS: 60_000)))
        guard case .allow(let first) = engine.check(coder, estimate: fiveCents),
            case .allow(let second) = engine.check(coder, estimate: fiveCents)
        else {
            Issue.record("refused")
            return
        }
        #expect(first.drawsFrom != nil)
        #expect(second.drawsFrom == nil)  // $0.02 left is less than a $0.05 call
        #expect(key(engine).reservedNanoUSD == 70_000_000 + 50_000_000)
    }
}
