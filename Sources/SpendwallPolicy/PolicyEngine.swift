import Foundation
import SpendwallCore
import SpendwallPricing
import Synchronization

/// Decides every call against the caps and keeps their budgets: spend in each window and
/// what in-flight reservations hold.
///
/// All state is in memory, rebuilt from the ledger at start-up (``seed(_:)``); a check never
/// reads the ledger. Every operation runs under one lock, so each check-and-reserve is atomic
/// and concurrent checks against a cap can never together admit more than its limit.
///
/// It is a lock rather than an actor on purpose: a decision takes microseconds, and the socket
/// server makes it on the event loop that read the request, without a hop to another thread.
public final class PolicyEngine: Sendable {
    private let state: Mutex<PolicyState>
    /// The engine's tunables (changed by a reload of spendwall.toml).
    public var settings: PolicySettings { state.withLock { $0.settings } }

    public init(
        caps: [Cap], pricing: PriceTable, settings: PolicySettings = PolicySettings(),
        clock: any WallClock = SystemWallClock(), calendar: Calendar = .current
    ) {
        state = Mutex(PolicyState(caps: caps, pricing: pricing, settings: settings, clock: clock, calendar: calendar))
    }

    /// Decides a call and, when it is allowed, reserves its worst-case cost in every cap that
    /// covers it. `approved` names `approve` caps a person has let this call pass.
    public func check(
        _ call: CallAttributes, estimate: CallEstimate, peer: PeerIdentity = .unknown,
        path: SpendPath = .sdk, strict: Bool = false, approved: Set<String> = []
    ) -> CheckDecision {
        state.withLock {
            $0.check(call, estimate: estimate, peer: peer, path: path, strict: strict, approved: approved)
        }
    }

    /// Settles a reservation to its real usage: releases what it held and adds the real cost
    /// to every window. Returns nil for an id that is not (or no longer) reserved.
    public func settle(_ reservationID: String, usage: Usage) -> Settlement? {
        state.withLock { $0.settle(reservationID, usage: usage) }
    }

    /// Adds spend that arrived without a live reservation (spooled reports, start-up replay).
    public func record(_ call: CallAttributes, costNanoUSD: NanoUSD, tokens: Int64, atMS time: Int64) {
        state.withLock { $0.record(call, costNanoUSD: costNanoUSD, tokens: tokens, atMS: time) }
    }

    /// Charges reservations whose report never came at their reserved cost and returns them,
    /// so they are written to the ledger as `unreported`.
    public func expireReservations() -> [Reservation] {
        state.withLock { $0.expireReservations() }
    }

    /// Sets `amount` aside for `call`'s agent in every cap that covers it, for `ttlMS`: the
    /// agent's calls then draw on it instead of reserving again.
    public func preapprove(
        _ call: CallAttributes, amountNanoUSD: NanoUSD, reason: String, ttlMS: Int64, peer: PeerIdentity = .unknown,
        approved: Set<String> = []
    ) -> PreapprovalDecision {
        state.withLock {
            $0.preapprove(
                call, amountNanoUSD: amountNanoUSD, reason: reason, ttlMS: ttlMS, peer: peer, approved: approved)
        }
    }

    /// Releases what is left of a pre-approval; nil for an unknown or closed id.
    public func releasePreapproval(_ id: String) -> Preapproval? { state.withLock { $0.releasePreapproval(id) } }

    /// Open pre-approvals, for one agent or all.
    public func preapprovals(agent: String? = nil) -> [Preapproval] {
        state.withLock { $0.openPreapprovals(agent: agent) }
    }

    /// Rebuilds window state from spend recorded before start-up.
    public func seed(_ records: [SpendRecord]) {
        state.withLock { $0.seed(records) }
    }

    /// Learns what recent calls produced, for caps with `reserve = "expected"` (at start-up).
    public func learnOutputs(_ calls: [RecordedOutput]) {
        state.withLock { $0.learnOutputs(calls) }
    }

    /// Takes back reservations that were in flight at the last clean stop, holding their budget
    /// again under the current caps.
    public func restore(_ saved: [Reservation]) {
        state.withLock { $0.restore(saved) }
    }

    /// Swaps in new caps and prices (a config reload): window state is rebuilt from `history`
    /// and in-flight reservations hold their budget under the new caps.
    public func reconfigure(caps: [Cap], pricing: PriceTable, history: [SpendRecord]) {
        state.withLock { $0.reconfigure(caps: caps, pricing: pricing, history: history) }
    }

    /// New tunables; reservations already taken keep their expiry.
    public func update(_ settings: PolicySettings) {
        state.withLock { $0.settings = settings }
    }

    /// Turns a kill switch on or off at once: the next check in its scope answers `killed`.
    /// Returns false when the switch already was in that state.
    @discardableResult
    public func setKill(_ scope: KillScope, on: Bool) -> Bool { state.withLock { $0.setKill(scope, on: on) } }

    /// The kill switches that are on.
    public var kills: Set<KillScope> { state.withLock { $0.kills } }

    /// Adds (or replaces) a `spendwall run` session's own cap (``Cap/session(_:limitNanoUSD:limitTokens:)``),
    /// counting what the session already spent. A reload of caps.toml keeps it.
    public func addSessionCap(_ cap: Cap, spentNanoUSD: NanoUSD = 0, spentTokens: Int64 = 0) {
        state.withLock { $0.addSessionCap(cap, spentNanoUSD: spentNanoUSD, spentTokens: spentTokens) }
    }

    /// Removes a session's cap when the session ends.
    public func removeSessionCap(named name: String) { state.withLock { $0.removeSessionCap(named: name) } }

    /// The caps in force.
    public var currentCaps: [Cap] { state.withLock { $0.currentCaps } }

    /// The price table in force.
    public var pricing: PriceTable { state.withLock { $0.pricing } }

    /// A reservation while it is held (checked, not yet reported or expired).
    public func reservation(_ id: String) -> Reservation? { state.withLock { $0.reservation(id) } }

    /// The reservations in flight, to be saved at a clean stop.
    public func inFlight() -> [Reservation] { state.withLock { $0.inFlight() } }

    /// Every cap with each of its budgets; a cap nothing has matched yet shows one empty budget.
    public func snapshot() -> PolicySnapshot { state.withLock { $0.snapshot() } }

    /// The budget of every cap that covers a call with these attributes.
    public func statuses(for call: CallAttributes) -> [CapStatus] { state.withLock { $0.statuses(for: call) } }

    // MARK: Team leases

    /// The leases the lease service looks after: each with its cap, or nil for a cap that is no
    /// longer a team cap (its lease is to be settled and returned).
    public func leaseNeeds() -> [(key: LeaseKey, lease: Lease, cap: Cap?)] { state.withLock { $0.leaseNeeds() } }

    /// Records what the team database answered for a lease (`sentUsed`: the spend sent with it).
    public func applyLease(_ grant: LeaseGrant, for key: LeaseKey, sentUsed: NanoUSD, limit: NanoUSD) {
        state.withLock {
            $0.team.apply(grant, for: key, sentUsed: sentUsed, limit: limit)
        }
    }

    /// Forgets a lease that is settled and returned (a past period, or a cap no longer a team cap).
    public func dropLease(_ key: LeaseKey) {
        state.withLock { state in
            if let lease = state.team.leases[key], lease.reservedNanoUSD <= 0 { state.team.leases[key] = nil }
        }
    }

    /// Whether the team database answered the last time it was asked.
    public var teamOnline: Bool {
        get { state.withLock { $0.team.online } }
    }

    /// Marks the team database reachable or not (decides what a spent lease does, `team.offline`).
    public func setTeamOnline(_ online: Bool) { state.withLock { $0.team.online = online } }

    /// The price that applies to `model` (cached per model name).
    public func price(_ model: String) -> PriceTable.Resolution { state.withLock { $0.price(model) } }
}

/// One call's output tokens from the ledger, for learning `expected` reservations.
public struct RecordedOutput: Sendable {
    public var agent: String?
    public var model: String
    public var outputTokens: Int64

    public init(agent: String?, model: String, outputTokens: Int64) {
        self.agent = agent
        self.model = model
        self.outputTokens = outputTokens
    }
}

/// Spend recorded in the ledger, replayed into the windows at start-up.
public struct SpendRecord: Sendable {
    public var attributes: CallAttributes
    public var costNanoUSD: NanoUSD
    public var tokens: Int64
    public var timeMS: Int64

    public init(attributes: CallAttributes, costNanoUSD: NanoUSD, tokens: Int64, timeMS: Int64) {
        self.attributes = attributes
        self.costNanoUSD = costNanoUSD
        self.tokens = tokens
        self.timeMS = timeMS
    }
}

extension CapScope {
    /// The key shown for a cap nothing has matched yet.
    var emptyKey: String {
        switch self {
        case .global: return "*"
        case .agent(let p), .app(let p), .session(let p), .model(let p), .tag(_, let p): return p.description
        }
    }
}
