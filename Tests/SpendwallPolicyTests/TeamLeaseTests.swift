import Foundation
import Testing

@testable import SpendwallCore
@testable import SpendwallPolicy
@testable import SpendwallPricing

/// Team caps decide from this machine's lease, never the cap's whole limit.
@Suite struct TeamLeaseTests {
    let call = CallAttributes(provider: .openai, model: "test-model", agent: "a")

    func teamEngine(offline: TeamPolicy.Offline = .block, clock: ManualClock = ManualClock()) -> PolicyEngine {
        var cap = dollarCap(10.0, window: .calendar(.day))
        cap.team = true
        return PolicyEngine(
            caps: [cap], pricing: testPricing, settings: PolicySettings(team: TeamPolicy(offline: offline)),
            clock: clock)
    }

    func grant(_ engine: PolicyEngine, dollars: Double, clock: ManualClock, used: NanoUSD = 0) -> LeaseKey {
        let need = engine.leaseNeeds().first!
        engine.applyLease(
            LeaseGrant(
                grantedNanoUSD: Money.nanos(fromDollars: dollars)!, returnedNanoUSD: 0, usedNanoUSD: used,
                expiresAtMS: clock.nowMS() + 60_000, teamUnleasedNanoUSD: 5_000_000_000),
            for: need.key, sentUsed: 0, limit: 10_000_000_000)
        engine.setTeamOnline(true)
        return need.key
    }

    @Test func aTeamCapAdmitsOnlyWhatItsLeaseHolds() {
        let clock = ManualClock()
        let engine = teamEngine(clock: clock)
        // No lease yet: blocked although the cap's limit is $10.
        guard case .block = engine.check(call, estimate: fiveCents) else { Issue.record("no lease: block"); return }
        _ = grant(engine, dollars: 0.2, clock: clock)
        var allowed: [Reservation] = []
        for _ in 0..<10 {
            if case .allow(let r) = engine.check(call, estimate: fiveCents) { allowed.append(r) }
        }
        #expect(allowed.count == 4)  // $0.20 / $0.05
        // Settling for less frees the lease for more.
        for r in allowed { _ = engine.settle(r.id, usage: Usage(outputTokens: 1000)) }
        let lease = engine.leaseNeeds().first!.lease
        #expect(lease.usedNanoUSD == 40_000_000)
        #expect(lease.reservedNanoUSD == 0)
        #expect(lease.availableNanoUSD == 160_000_000)
    }

    @Test func aLeasePastItsExpiryIsNotDrawnOn() {
        let clock = ManualClock()
        let engine = teamEngine(clock: clock)
        _ = grant(engine, dollars: 1, clock: clock)
        clock.advance(61_000)
        guard case .block = engine.check(call, estimate: fiveCents) else {
            Issue.record("expired lease: block"); return
        }
    }

    @Test(arguments: [TeamPolicy.Offline.block, .localOnly])
    func offlineWithASpentLeaseFollowsTheConfiguredMode(_ mode: TeamPolicy.Offline) {
        let clock = ManualClock()
        let engine = teamEngine(offline: mode, clock: clock)
        _ = grant(engine, dollars: 0.05, clock: clock)
        engine.setTeamOnline(false)
        guard case .allow = engine.check(call, estimate: fiveCents) else { Issue.record("the lease is used"); return }
        let next = engine.check(call, estimate: fiveCents)
        switch (mode, next) {
        case (.block, .block(_, let reason)): #expect(reason.contains("cannot be reached"))
        case (.localOnly, .allow): break
        default: Issue.record("\(mode): \(next)")
        }
    }

    @Test func theFirstAnswerAdoptsSpendRecordedBeforeTheStart() {
        let clock = ManualClock()
        let engine = teamEngine(clock: clock)
        _ = grant(engine, dollars: 1, clock: clock, used: 300_000_000)
        let lease = engine.leaseNeeds().first!.lease
        #expect(lease.usedNanoUSD == 300_000_000)
        #expect(lease.reportedNanoUSD == 300_000_000)
        #expect(lease.availableNanoUSD == 700_000_000)
    }

    @Test func teamPeriodsAgreeAcrossTimeZones() {
        // 2027-01-15 13:00 UTC, a Friday.
        let now: Int64 = 1_800_018_000_000
        let day = CapWindow.calendar(.day).teamPeriodStart(nowMS: now)
        #expect(day % 86_400_000 == 0 && now - day < 86_400_000)
        #expect(CapWindow.rolling(milliseconds: 3_600_000).teamPeriodStart(nowMS: now) % 3_600_000 == 0)
    }
}
