import Foundation
import Testing

@testable import SpendwallCore
@testable import SpendwallPolicy
@testable import SpendwallPricing

/// `reserve = "worst_case"` against `reserve = "expected"`: what each admits and what each can
/// spend, with a coding agent's shape of calls (1,000 input tokens, `max_tokens` 8,000, a few
/// hundred output tokens in practice).
@Suite struct ReserveModeTests {
    let call = CallAttributes(provider: .openai, model: "test-model", agent: "coder")
    /// $0.001 input + up to $0.08 output = $0.081 worst case per call.
    let estimate = CallEstimate(inputTokens: 1000, maxOutputTokens: 8000)

    func cap(_ mode: ReserveMode) -> Cap {
        Cap(
            name: "cap", scope: .global, window: .rolling(milliseconds: 86_400_000),
            limitNanoUSD: 1_000_000_000, action: .block, reserve: mode)
    }

    /// Output counts like a coding agent's: 200 to 1,199 tokens, from a fixed seed.
    func history(_ count: Int) -> [RecordedOutput] {
        var rng = SeededGenerator(seed: 7)
        return (0..<count).map { _ in
            RecordedOutput(agent: "coder", model: "test-model", outputTokens: Int64.random(in: 200..<1200, using: &rng))
        }
    }

    func admittedInParallel(_ engine: PolicyEngine) -> [Reservation] {
        var admitted: [Reservation] = []
        while case .allow(let reservation) = engine.check(call, estimate: estimate) { admitted.append(reservation) }
        return admitted
    }

    func spent(_ engine: PolicyEngine) -> NanoUSD { engine.snapshot().caps[0].keys[0].spentNanoUSD }

    @Test func worstCaseNeverExceedsTheCapEvenWhenEveryCallUsesItsWholeLimit() {
        let engine = PolicyEngine(caps: [cap(.worstCase)], pricing: testPricing, clock: ManualClock())
        engine.learnOutputs(history(200))
        var total = 0
        // Rounds of parallel calls, each settled at its full limit, until nothing more fits.
        while true {
            let admitted = admittedInParallel(engine)
            if admitted.isEmpty { break }
            total += admitted.count
            for r in admitted { _ = engine.settle(r.id, usage: Usage(inputTokens: 1000, outputTokens: 8000)) }
            #expect(spent(engine) <= 1_000_000_000)
        }
        #expect(total == 12)  // 12 × $0.081 = $0.972; a 13th would pass $1
        #expect(spent(engine) == 972_000_000)
    }

    @Test func expectedFallsBackToTheWorstCaseUntilItHasSeenEnoughCalls() {
        let engine = PolicyEngine(caps: [cap(.expected)], pricing: testPricing, clock: ManualClock())
        engine.learnOutputs(history(OutputHistory.minimumSamples - 1))
        #expect(admittedInParallel(engine).count == 12)
    }

    @Test func expectedAdmitsMoreParallelCallsAndHoldsItsP99() throws {
        let worst = PolicyEngine(caps: [cap(.worstCase)], pricing: testPricing, clock: ManualClock())
        let expected = PolicyEngine(caps: [cap(.expected)], pricing: testPricing, clock: ManualClock())
        for engine in [worst, expected] { engine.learnOutputs(history(200)) }
        let p99 = history(200).map(\.outputTokens).sorted()[197]  // nearest rank: ceil(0.99 × 200) = 198th
        let admitted = admittedInParallel(expected)
        let hold = try #require(admitted.first?.holds.first)
        #expect(hold.reservedTokens == 1000 + p99)
        #expect(hold.reservedNanoUSD == 1_000_000 + p99 * 10_000)
        #expect(admitted.first?.reservedNanoUSD == 81_000_000)  // the worst case is still what it may cost
        #expect(admittedInParallel(worst).count == 12)
        #expect(admitted.count == Int(1_000_000_000 / hold.reservedNanoUSD))
        #expect(admitted.count > 4 * 12)
    }

    @Test func expectedStaysWithinItsStatedBound() {
        // The bound (README): spend ≤ limit + Σ over the calls admitted while the cap was full of
        // (worst case − what each held). Checked twice: calls that behave like their history,
        // and calls that all use their whole limit (the adversarial case the bound is for).
        for adversarial in [false, true] {
            let engine = PolicyEngine(caps: [cap(.expected)], pricing: testPricing, clock: ManualClock())
            engine.learnOutputs(history(200))
            var rng = SeededGenerator(seed: 99)
            var overshootAllowance: NanoUSD = 0
            for _ in 0..<20 {
                let admitted = admittedInParallel(engine)
                if admitted.isEmpty { break }
                for r in admitted {
                    overshootAllowance += r.reservedNanoUSD - r.holds[0].reservedNanoUSD
                    let output = adversarial ? 8000 : Int64.random(in: 200..<1200, using: &rng)
                    _ = engine.settle(r.id, usage: Usage(inputTokens: 1000, outputTokens: output))
                }
                #expect(spent(engine) <= 1_000_000_000 + overshootAllowance)
            }
            if !adversarial {
                // Calls like the history stay under the cap: only the rare output above p99 can
                // pass it, by less than one call's worst case.
                #expect(spent(engine) <= 1_000_000_000 + 81_000_000)
            }
        }
    }

    @Test func reportsTeachTheHistory() {
        let engine = PolicyEngine(caps: [cap(.expected)], pricing: testPricing, clock: ManualClock())
        for _ in 0..<OutputHistory.minimumSamples {
            guard case .allow(let r) = engine.check(call, estimate: estimate) else {
                Issue.record("blocked")
                return
            }
            _ = engine.settle(r.id, usage: Usage(inputTokens: 1000, outputTokens: 100))
        }
        guard case .allow(let r) = engine.check(call, estimate: estimate) else {
            Issue.record("blocked")
            return
        }
        #expect(r.holds[0].reservedTokens == 1100)
        // Another agent has no history yet: it reserves the worst case.
        let other = CallAttributes(provider: .openai, model: "test-model", agent: "reviewer")
        guard case .allow(let o) = engine.check(other, estimate: estimate) else {
            Issue.record("blocked")
            return
        }
        #expect(o.holds[0].reservedTokens == 9000)
    }

    @Test func historyPercentileIsNearestRank() {
        var history = OutputHistory()
        for n in 1...100 { history.add(agent: nil, model: "m", outputTokens: Int64(n)) }
        #expect(history.percentile(0.99, agent: nil, model: "m") == 99)
        #expect(history.percentile(0.5, agent: nil, model: "m") == 50)
        #expect(history.percentile(1.0, agent: nil, model: "m") == 100)
        // Only the newest `capacity` counts are kept.
        for _ in 0..<OutputHistory.capacity { history.add(agent: nil, model: "m", outputTokens: 5) }
        #expect(history.percentile(1.0, agent: nil, model: "m") == 5)
    }
}

/// A small deterministic generator (SplitMix64), so the tests' numbers are the same every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
