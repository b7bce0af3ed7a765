import Foundation
import SpendwallCore
import SpendwallPricing

/// The policy engine's state and rules: caps, the budget of every cap key (window spend plus
/// what in-flight reservations hold), and the reservations themselves. Plain value code; the
/// ``PolicyEngine`` makes every operation on it atomic.
struct PolicyState {
    private var caps: [Cap]
    /// The caps of running `spendwall run` sessions (also in `caps`); a reload keeps them.
    private var sessionCaps: [Cap] = []
    private var budgets: [String: [String: Budget]] = [:]
    private var reservations: [String: Reservation] = [:]
    private var prices: [String: PriceTable.Resolution] = [:]
    private var rng = SystemRandomNumberGenerator()
    private var outputs = OutputHistory()
    private var preapprovals: [String: Preapproval] = [:]

    private(set) var pricing: PriceTable
    var settings: PolicySettings
    private let clock: any WallClock
    private let calendar: Calendar

    private(set) var kills: Set<KillScope> = []
    /// Team caps' budget leases (team mode).
    var team = TeamLeases()
    /// The current team period of each window, so a check computes it only when one ends.
    private var teamPeriods: [CapWindow: Range<Int64>] = [:]

    private struct Budget {
        var window: WindowAccumulator
        var reservedNanoUSD: NanoUSD = 0
        var reservedTokens: Int64 = 0
        /// Over the warning line (and over the limit) when last looked at: a warning is raised
        /// once per crossing, and re-armed when the budget falls back below the line.
        var warned = false
        var exceeded = false
    }

    init(caps: [Cap], pricing: PriceTable, settings: PolicySettings, clock: any WallClock, calendar: Calendar) {
        self.caps = caps
        self.pricing = pricing
        self.settings = settings
        self.clock = clock
        self.calendar = calendar
    }

    // MARK: Decisions

    /// Decides a call and, when it is allowed, reserves its worst-case cost in every cap that
    /// covers it. `approved` names `approve` caps a person has let this call pass.
    mutating func check(
        _ call: CallAttributes, estimate: CallEstimate, peer: PeerIdentity = .unknown,
        path: SpendPath = .sdk, strict: Bool = false, approved: Set<String> = []
    ) -> CheckDecision {
        if let kill = kills.first(where: { $0.covers(call) }) { return .killed(kill) }
        let now = clock.nowMS()
        let resolution = price(call.model)
        let cost = estimate.worstCaseCost(resolution.price)
        let tokens = estimate.worstCaseTokens
        var holds: [CapHold] = []
        var needsApproval: (CapStatus, String)?
        let drawn = preapproval(for: call, cost: cost, now: now)
        for cap in caps {
            guard let key = cap.scope.key(for: call) else { continue }
            if let drawn, drawn.holds.contains(where: { $0.cap == cap.name && $0.key == key }) { continue }
            var budget = budgets[cap.name]?[key] ?? newBudget(cap, now: now)
            budget.window.advance(to: now)
            budgets[cap.name, default: [:]][key] = budget
            var hold = CapHold(cap: cap.name, key: key, reservedNanoUSD: cost, reservedTokens: tokens)
            if cap.reserve == .expected,
                let output = expectedOutput(cap.reservePercentile, call: call, limit: estimate.maxOutputTokens)
            {
                let usage = Usage(inputTokens: estimate.inputTokens, outputTokens: output)
                hold.reservedNanoUSD = resolution.price.cost(of: usage, batch: estimate.batch)
                hold.reservedTokens = estimate.inputTokens + output
            }
            var reason: String?
            if cap.team, let teamPolicy = settings.team {
                let lease = LeaseKey(cap: cap.name, key: key, periodMS: teamPeriodStart(cap.window, now: now))
                hold.leasePeriodMS = lease.periodMS
                if cap.action != .alert {
                    reason = exceedsLease(cap, lease, budget, cost: hold.reservedNanoUSD, policy: teamPolicy, now: now)
                }
            } else if cap.action != .alert {
                reason = exceeds(cap, budget, cost: hold.reservedNanoUSD, tokens: hold.reservedTokens)
            }
            if let reason {
                if cap.action == .block { return .block(status(cap, key: key, budget), reason: reason) }
                if !approved.contains(cap.name) && needsApproval == nil {
                    needsApproval = (status(cap, key: key, budget), reason)
                }
            }
            holds.append(hold)
        }
        // Block caps are decided first: a person is only asked about a call that could go ahead.
        if let (status, reason) = needsApproval { return .approvalRequired(status, reason: reason) }
        for hold in holds {
            budgets[hold.cap]![hold.key]!.reservedNanoUSD += hold.reservedNanoUSD
            budgets[hold.cap]![hold.key]!.reservedTokens += hold.reservedTokens
            if let period = hold.leasePeriodMS {
                team.leases[LeaseKey(cap: hold.cap, key: hold.key, periodMS: period)]?.reservedNanoUSD +=
                    hold.reservedNanoUSD
            }
        }
        var reservation = Reservation(
            id: makeReservationID(), attributes: call, peer: peer, path: path, strict: strict,
            estimate: estimate, price: resolution.price, priced: resolution.priced,
            reservedNanoUSD: cost, reservedTokens: tokens, createdAtMS: now,
            expiresAtMS: now + settings.reservationTTLMS, holds: holds)
        reservation.warnings = holds.compactMap { warning(for: $0) }
        if let drawn {
            reservation.drawsFrom = drawn.id
            preapprovals[drawn.id]!.availableNanoUSD -= cost
            preapprovals[drawn.id]!.inFlight += 1
        }
        reservations[reservation.id] = reservation
        return .allow(reservation)
    }

    /// Settles a reservation to its real usage: releases what it held and adds the real cost
    /// to every window. Returns nil for an id that is not (or no longer) reserved.
    mutating func settle(_ reservationID: String, usage: Usage) -> Settlement? {
        guard let reservation = reservations.removeValue(forKey: reservationID) else { return nil }
        let now = clock.nowMS()
        let cost = reservation.price.cost(of: usage, batch: reservation.estimate.batch)
        release(reservation, chargingCost: cost, tokens: usage.totalTokens, at: now)
        settleDraw(reservation, cost: cost, tokens: usage.totalTokens, at: now)
        outputs.add(
            agent: reservation.attributes.agent, model: reservation.attributes.model, outputTokens: usage.outputTokens)
        var settlement = Settlement(reservation: reservation, usage: usage, costNanoUSD: cost, settledAtMS: now)
        settlement.warnings = reservation.holds.compactMap { warning(for: $0) }
        return settlement
    }

    /// Adds spend that arrived without a live reservation (spooled reports, start-up replay).
    mutating func record(_ call: CallAttributes, costNanoUSD: NanoUSD, tokens: Int64, atMS time: Int64) {
        record(call, costNanoUSD: costNanoUSD, tokens: tokens, atMS: time, into: caps)
        guard settings.team != nil else { return }
        let now = clock.nowMS()
        for cap in caps where cap.team {
            guard let key = cap.scope.key(for: call) else { continue }
            let lease = LeaseKey(cap: cap.name, key: key, periodMS: cap.window.teamPeriodStart(nowMS: now))
            team.leases[lease, default: Lease(limitNanoUSD: cap.limitNanoUSD ?? 0)].usedNanoUSD += costNanoUSD
        }
    }

    private mutating func record(
        _ call: CallAttributes, costNanoUSD: NanoUSD, tokens: Int64, atMS time: Int64, into caps: [Cap]
    ) {
        let now = clock.nowMS()
        for cap in caps {
            guard let key = cap.scope.key(for: call) else { continue }
            var budget = budgets[cap.name]?[key] ?? newBudget(cap, now: now)
            budget.window.advance(to: now)
            budget.window.add(cost: costNanoUSD, tokens: tokens, at: min(time, now))
            budgets[cap.name, default: [:]][key] = budget
        }
    }

    /// Charges reservations whose report never came at their reserved cost and returns them,
    /// so they are written to the ledger as `unreported`.
    mutating func expireReservations() -> [Reservation] {
        let now = clock.nowMS()
        var expired: [Reservation] = []
        for (id, reservation) in reservations where reservation.expiresAtMS <= now {
            reservations[id] = nil
            release(
                reservation, chargingCost: reservation.reservedNanoUSD,
                tokens: reservation.reservedTokens, at: now)
            settleDraw(reservation, cost: reservation.reservedNanoUSD, tokens: reservation.reservedTokens, at: now)
            expired.append(reservation)
        }
        for (id, preapproval) in preapprovals where !preapproval.closed && preapproval.expiresAtMS <= now {
            close(id)
        }
        return expired
    }

    // MARK: Pre-approvals

    /// Sets `amount` aside for `call`'s agent in every cap that covers it, for `ttlMS`.
    mutating func preapprove(
        _ call: CallAttributes, amountNanoUSD amount: NanoUSD, reason: String, ttlMS: Int64,
        peer: PeerIdentity = .unknown, approved: Set<String> = []
    ) -> PreapprovalDecision {
        if let kill = kills.first(where: { $0.covers(call) }) { return .killed(kill) }
        let now = clock.nowMS()
        var holds: [CapHold] = []
        var needsApproval: (CapStatus, String)?
        for cap in caps {
            guard let key = cap.scope.key(for: call) else { continue }
            var budget = budgets[cap.name]?[key] ?? newBudget(cap, now: now)
            budget.window.advance(to: now)
            budgets[cap.name, default: [:]][key] = budget
            if cap.action != .alert, let reason = exceeds(cap, budget, cost: amount, tokens: 0) {
                if cap.action == .block { return .block(status(cap, key: key, budget), reason: reason) }
                if !approved.contains(cap.name) && needsApproval == nil {
                    needsApproval = (status(cap, key: key, budget), reason)
                }
            }
            holds.append(CapHold(cap: cap.name, key: key, reservedNanoUSD: amount))
        }
        if let (status, reason) = needsApproval { return .approvalRequired(status, reason: reason) }
        for hold in holds { budgets[hold.cap]![hold.key]!.reservedNanoUSD += amount }
        let preapproval = Preapproval(
            id: "pa_" + String(makeReservationID().dropFirst(2)), attributes: call, peer: peer, reason: reason,
            amountNanoUSD: amount, createdAtMS: now, expiresAtMS: now + ttlMS, holds: holds)
        preapprovals[preapproval.id] = preapproval
        return .granted(preapproval)
    }

    /// Releases what is left of a pre-approval (calls in flight under it keep their share).
    /// Returns it as it was before, or nil for an unknown or already closed id.
    mutating func releasePreapproval(_ id: String) -> Preapproval? {
        guard let preapproval = preapprovals[id], !preapproval.closed else { return nil }
        close(id)
        return preapproval
    }

    /// Open pre-approvals, for one agent or all.
    func openPreapprovals(agent: String?) -> [Preapproval] {
        preapprovals.values.filter { !$0.closed && (agent == nil || $0.attributes.agent == agent) }
            .sorted { $0.createdAtMS < $1.createdAtMS }
    }

    /// The open pre-approval a call of this agent draws on: the oldest with enough left.
    private func preapproval(for call: CallAttributes, cost: NanoUSD, now: Int64) -> Preapproval? {
        guard let agent = call.agent, !preapprovals.isEmpty else { return nil }
        return preapprovals.values.filter {
            !$0.closed && $0.attributes.agent == agent && $0.availableNanoUSD >= cost && $0.expiresAtMS > now
        }.min { $0.createdAtMS < $1.createdAtMS }
    }

    /// Moves a settled call's cost from its pre-approval's hold into the windows of the caps the
    /// pre-approval covers.
    private mutating func settleDraw(_ reservation: Reservation, cost: NanoUSD, tokens: Int64, at now: Int64) {
        guard let id = reservation.drawsFrom, var preapproval = preapprovals[id] else { return }
        let promised = reservation.reservedNanoUSD
        // An open pre-approval gets back what the call did not use; a closed one holds only
        // what its calls in flight were promised.
        let released = min(preapproval.closed ? promised : cost, preapproval.heldNanoUSD)
        for hold in preapproval.holds {
            guard var budget = budgets[hold.cap]?[hold.key] else { continue }
            budget.reservedNanoUSD -= released
            budget.window.advance(to: now)
            budget.window.add(cost: cost, tokens: tokens, at: now)
            budgets[hold.cap]![hold.key] = budget
        }
        preapproval.heldNanoUSD -= released
        if !preapproval.closed {
            preapproval.availableNanoUSD = min(
                preapproval.availableNanoUSD + max(0, promised - cost), preapproval.heldNanoUSD)
        }
        preapproval.spentNanoUSD += cost
        preapproval.calls += 1
        preapproval.inFlight -= 1
        preapprovals[id] = preapproval
        if preapproval.closed && (preapproval.inFlight <= 0 || preapproval.heldNanoUSD <= 0) { forget(id) }
    }

    private mutating func close(_ id: String) {
        guard var preapproval = preapprovals[id] else { return }
        let released = preapproval.availableNanoUSD
        for hold in preapproval.holds { budgets[hold.cap]?[hold.key]?.reservedNanoUSD -= released }
        preapproval.heldNanoUSD -= released
        preapproval.availableNanoUSD = 0
        preapproval.closed = true
        preapprovals[id] = preapproval
        if preapproval.inFlight <= 0 { forget(id) }
    }

    /// Drops a closed pre-approval, releasing any hold left (calls that will never settle).
    private mutating func forget(_ id: String) {
        guard let preapproval = preapprovals.removeValue(forKey: id) else { return }
        for hold in preapproval.holds { budgets[hold.cap]?[hold.key]?.reservedNanoUSD -= preapproval.heldNanoUSD }
    }

    /// Learns the output tokens of calls recorded before start-up, oldest first.
    mutating func learnOutputs(_ calls: [RecordedOutput]) {
        for call in calls { outputs.add(agent: call.agent, model: call.model, outputTokens: call.outputTokens) }
    }

    /// The output an `expected` reservation sets aside: the percentile of this agent and model's
    /// recent output, never above the call's limit; nil (reserve the worst case) while too few
    /// calls are known.
    private mutating func expectedOutput(_ percentile: Double, call: CallAttributes, limit: Int64) -> Int64? {
        guard let seen = outputs.percentile(percentile, agent: call.agent, model: call.model) else { return nil }
        return min(seen, limit)
    }

    // MARK: Kill switches

    /// Turns a kill switch on or off; returns false when it already was.
    mutating func setKill(_ scope: KillScope, on: Bool) -> Bool {
        on ? kills.insert(scope).inserted : kills.remove(scope) != nil
    }

    // MARK: State across restarts

    /// Rebuilds window state from spend recorded before start-up.
    mutating func seed(_ records: [SpendRecord]) {
        for record in records {
            self.record(
                record.attributes, costNanoUSD: record.costNanoUSD, tokens: record.tokens, atMS: record.timeMS,
                into: caps)
        }
    }

    /// Takes back reservations that were in flight at the last clean stop, holding their budget
    /// again under the current caps.
    mutating func restore(_ saved: [Reservation]) {
        let now = clock.nowMS()
        for var reservation in saved where reservations[reservation.id] == nil {
            reservation.holds = []
            for cap in caps {
                guard let key = cap.scope.key(for: reservation.attributes) else { continue }
                var budget = budgets[cap.name]?[key] ?? newBudget(cap, now: now)
                // Held at the worst case: what an `expected` cap held before is not kept.
                budget.reservedNanoUSD += reservation.reservedNanoUSD
                budget.reservedTokens += reservation.reservedTokens
                budgets[cap.name, default: [:]][key] = budget
                var hold = CapHold(
                    cap: cap.name, key: key, reservedNanoUSD: reservation.reservedNanoUSD,
                    reservedTokens: reservation.reservedTokens)
                if cap.team, settings.team != nil {
                    let lease = LeaseKey(cap: cap.name, key: key, periodMS: cap.window.teamPeriodStart(nowMS: now))
                    hold.leasePeriodMS = lease.periodMS
                    team.leases[lease, default: Lease(limitNanoUSD: cap.limitNanoUSD ?? 0)].reservedNanoUSD +=
                        reservation.reservedNanoUSD
                }
                reservation.holds.append(hold)
            }
            reservations[reservation.id] = reservation
        }
    }

    /// Swaps in new caps and prices (a config reload). A cap whose scope and window are
    /// unchanged keeps its window state (it may hold spend not yet committed to the ledger);
    /// a new or changed cap is rebuilt from `history`. In-flight reservations hold their
    /// budget again under the new caps.
    mutating func reconfigure(caps newCaps: [Cap], pricing: PriceTable, history: [SpendRecord]) {
        let previous = Dictionary(caps.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let kept = budgets
        let newCaps = newCaps.filter { Cap.sessionID(ofCapName: $0.name) == nil } + sessionCaps
        caps = newCaps
        self.pricing = pricing
        prices = [:]
        budgets = [:]
        var rebuilt: [Cap] = []
        for cap in newCaps {
            if let old = previous[cap.name], old.scope == cap.scope, old.window == cap.window,
                let windows = kept[cap.name]
            {
                budgets[cap.name] = windows.mapValues { budget in
                    var budget = budget
                    budget.reservedNanoUSD = 0
                    budget.reservedTokens = 0
                    return budget
                }
            } else {
                rebuilt.append(cap)
            }
        }
        for record in history where !rebuilt.isEmpty {
            self.record(
                record.attributes, costNanoUSD: record.costNanoUSD, tokens: record.tokens, atMS: record.timeMS,
                into: rebuilt)
        }
        let live = Array(reservations.values)
        reservations = [:]
        restore(live)
        for (id, preapproval) in preapprovals {
            var holds: [CapHold] = []
            for cap in caps {
                guard let key = cap.scope.key(for: preapproval.attributes) else { continue }
                var budget = budgets[cap.name]?[key] ?? newBudget(cap, now: clock.nowMS())
                budget.reservedNanoUSD += preapproval.heldNanoUSD
                budgets[cap.name, default: [:]][key] = budget
                holds.append(CapHold(cap: cap.name, key: key, reservedNanoUSD: preapproval.heldNanoUSD))
            }
            preapprovals[id]!.holds = holds
        }
    }

    // MARK: Session caps

    /// Adds (or replaces) a session's own cap, with what the session has already spent (after a
    /// daemon restart) counted in it.
    mutating func addSessionCap(_ cap: Cap, spentNanoUSD: NanoUSD, spentTokens: Int64) {
        removeSessionCap(named: cap.name)
        let now = clock.nowMS()
        var budget = newBudget(cap, now: now)
        if spentNanoUSD > 0 || spentTokens > 0 { budget.window.add(cost: spentNanoUSD, tokens: spentTokens, at: now) }
        guard case .session(let pattern) = cap.scope else { return }
        budgets[cap.name] = [pattern.description: budget]
        caps.append(cap)
        sessionCaps.append(cap)
    }

    /// Removes a session's cap (the session ended). Reservations it held release nothing more.
    mutating func removeSessionCap(named name: String) {
        guard sessionCaps.contains(where: { $0.name == name }) else { return }
        sessionCaps.removeAll { $0.name == name }
        caps.removeAll { $0.name == name }
        budgets[name] = nil
    }

    /// The caps in force.
    var currentCaps: [Cap] { caps }

    func reservation(_ id: String) -> Reservation? { reservations[id] }

    // MARK: Team leases

    /// Every lease to look after: those checks have drawn on, and one per team cap whose
    /// budget key is known before any call (global, exact and prefix scopes) in the current
    /// period, so a slice is taken before the first call needs it.
    mutating func leaseNeeds() -> [(key: LeaseKey, lease: Lease, cap: Cap?)] {
        guard settings.team != nil else { return [] }
        let now = clock.nowMS()
        for cap in caps where cap.team {
            let key: String?
            switch cap.scope {
            case .global: key = "*"
            case .agent(let p), .app(let p), .session(let p), .model(let p), .tag(_, let p):
                if case .each = p { key = nil } else { key = p.description }
            }
            guard let key else { continue }
            let lease = LeaseKey(cap: cap.name, key: key, periodMS: cap.window.teamPeriodStart(nowMS: now))
            if team.leases[lease] == nil {
                var fresh = Lease(limitNanoUSD: cap.limitNanoUSD ?? 0)
                fresh.wantedAtMS = now
                team.leases[lease] = fresh
            }
        }
        let byName = Dictionary(caps.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        return team.leases.map {
            (key: $0.key, lease: $0.value, cap: byName[$0.key.cap].flatMap { $0.team ? $0 : nil })
        }
    }

    /// The reservations in flight, to be saved at a clean stop.
    func inFlight() -> [Reservation] { Array(reservations.values) }

    // MARK: Reading

    /// The budget of every cap that covers a call with these attributes.
    mutating func statuses(for call: CallAttributes) -> [CapStatus] {
        let now = clock.nowMS()
        return caps.compactMap { cap in
            guard let key = cap.scope.key(for: call) else { return nil }
            var budget = budgets[cap.name]?[key] ?? newBudget(cap, now: now)
            budget.window.advance(to: now)
            return status(cap, key: key, budget)
        }
    }

    /// Every cap with each of its budgets; a cap nothing has matched yet shows one empty budget.
    mutating func snapshot() -> PolicySnapshot {
        let now = clock.nowMS()
        var result: [(cap: Cap, keys: [CapStatus])] = []
        for cap in caps {
            var statuses: [CapStatus] = []
            for (key, var budget) in budgets[cap.name] ?? [:] {
                budget.window.advance(to: now)
                budgets[cap.name]![key] = budget
                statuses.append(status(cap, key: key, budget))
            }
            if statuses.isEmpty {
                statuses.append(status(cap, key: cap.scope.emptyKey, newBudget(cap, now: now)))
            }
            result.append((cap, statuses.sorted { $0.key < $1.key }))
        }
        return PolicySnapshot(caps: result, reservationsInFlight: reservations.count)
    }

    /// The price that applies to `model` (cached per model name).
    mutating func price(_ model: String) -> PriceTable.Resolution {
        if let cached = prices[model] { return cached }
        let resolution = pricing.resolve(model)
        if prices.count < 10_000 { prices[model] = resolution }
        return resolution
    }

    // MARK: Internals

    private func newBudget(_ cap: Cap, now: Int64) -> Budget {
        Budget(window: WindowAccumulator(window: cap.window, calendar: calendar, nowMS: now))
    }

    private mutating func release(_ reservation: Reservation, chargingCost cost: NanoUSD, tokens: Int64, at now: Int64)
    {
        for hold in reservation.holds {
            guard var budget = budgets[hold.cap]?[hold.key] else { continue }
            budget.reservedNanoUSD -= hold.reservedNanoUSD
            budget.reservedTokens -= hold.reservedTokens
            budget.window.advance(to: now)
            budget.window.add(cost: cost, tokens: tokens, at: now)
            budgets[hold.cap]![hold.key] = budget
            if let period = hold.leasePeriodMS {
                let lease = LeaseKey(cap: hold.cap, key: hold.key, periodMS: period)
                team.leases[lease]?.reservedNanoUSD -= hold.reservedNanoUSD
                team.leases[lease]?.usedNanoUSD += cost
            }
        }
    }

    /// The start of the team period `now` falls in (cached until it ends).
    private mutating func teamPeriodStart(_ window: CapWindow, now: Int64) -> Int64 {
        if let period = teamPeriods[window], period.contains(now) { return period.lowerBound }
        let period = window.teamPeriod(nowMS: now)
        teamPeriods[window] = period
        return period.lowerBound
    }

    /// Why a team cap's call cannot draw on this machine's lease, or nil when it can. With the
    /// lease spent and the team database out of reach, `team.offline` decides: `local-only`
    /// judges the cap as this machine's own, `block` refuses.
    private mutating func exceedsLease(
        _ cap: Cap, _ key: LeaseKey, _ budget: Budget, cost: NanoUSD, policy: TeamPolicy, now: Int64
    ) -> String? {
        var lease = team.leases[key] ?? Lease(limitNanoUSD: cap.limitNanoUSD ?? 0)
        lease.limitNanoUSD = cap.limitNanoUSD ?? 0
        lease.wantedAtMS = now
        team.leases[key] = lease
        let usable = lease.expiresAtMS > now ? lease.availableNanoUSD : 0
        if cost <= usable { return nil }
        if !team.online {
            if policy.offline == .localOnly { return exceeds(cap, budget, cost: cost, tokens: 0) }
            return "team cap '\(cap.name)' (\(cap.window)): this machine's lease has \(Money.format(max(0, usable)))"
                + " left, less than this call's \(Money.format(cost)), and the team database cannot be reached"
                + " (team.offline = \"block\")"
        }
        if let unleased = lease.teamUnleasedNanoUSD, unleased + max(0, usable) < cost, lease.synced {
            return "team cap '\(cap.name)' (\(cap.window)) would be exceeded: the team budget of"
                + " \(Money.format(cap.limitNanoUSD ?? 0)) is spent or leased to other machines"
        }
        return "team cap '\(cap.name)' (\(cap.window)): this machine's lease has \(Money.format(max(0, usable)))"
            + " left, less than this call's \(Money.format(cost)); a new slice is being taken, retry shortly"
    }

    /// A warning when the budget has just crossed its cap's `warn_at` line (or, for an `alert`
    /// cap, its limit); re-arms the budget when it has fallen back below.
    private mutating func warning(for hold: CapHold) -> CapWarning? {
        guard let cap = caps.first(where: { $0.name == hold.cap }), var budget = budgets[hold.cap]?[hold.key] else {
            return nil
        }
        let current = status(cap, key: hold.key, budget)
        let over = current.used >= cap.warnAt
        let exceeded = cap.action == .alert && current.used > 1
        defer { budgets[hold.cap]![hold.key] = budget }
        if exceeded && !budget.exceeded {
            budget.exceeded = true
            budget.warned = true
            return CapWarning(status: current, exceeded: true)
        }
        budget.exceeded = exceeded
        if over && !budget.warned {
            budget.warned = true
            return CapWarning(status: current, exceeded: false)
        }
        if !over { budget.warned = false }
        return nil
    }

    private func exceeds(_ cap: Cap, _ budget: Budget, cost: NanoUSD, tokens: Int64) -> String? {
        if let limit = cap.limitNanoUSD {
            let spent = budget.window.spentNanoUSD
            if spent + budget.reservedNanoUSD + cost > limit {
                return "cap '\(cap.name)' (\(cap.window)) would be exceeded: spent \(Money.format(spent))"
                    + " + reserved \(Money.format(budget.reservedNanoUSD)) + this call \(Money.format(cost))"
                    + " > limit \(Money.format(limit))"
            }
        }
        if let limit = cap.limitTokens {
            let spent = budget.window.spentTokens
            if spent + budget.reservedTokens + tokens > limit {
                return "cap '\(cap.name)' (\(cap.window)) would be exceeded: \(spent) tokens spent"
                    + " + \(budget.reservedTokens) reserved + \(tokens) for this call > limit \(limit) tokens"
            }
        }
        return nil
    }

    private func status(_ cap: Cap, key: String, _ budget: Budget) -> CapStatus {
        CapStatus(
            cap: cap, key: key, spentNanoUSD: budget.window.spentNanoUSD,
            reservedNanoUSD: budget.reservedNanoUSD, spentTokens: budget.window.spentTokens,
            reservedTokens: budget.reservedTokens, resetsAtMS: budget.window.resetsAtMS)
    }

    private mutating func makeReservationID() -> String {
        let hi = rng.next() as UInt64
        let lo = rng.next() as UInt64
        return "r_" + hex(hi) + hex(lo)
    }

    private func hex(_ value: UInt64) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
