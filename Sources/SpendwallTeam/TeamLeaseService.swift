import Logging
import PostgresNIO
import ServiceLifecycle
import SpendwallConfig
import SpendwallCore
import SpendwallPolicy

/// Keeps this machine's team-cap leases: takes a slice of a team budget before the current
/// one runs out, settles real spend back, extends leases before they expire, and gives unused
/// slices back at a period's end and at a clean stop. Checks never wait on it: they draw on
/// whatever the lease holds, and this service works ahead of them in the background.
public struct TeamLeaseService: Service {
    let engine: PolicyEngine
    let database: TeamDatabase
    let team: TeamConfiguration
    let status: TeamStatus
    let logger: Logger
    let clock: any WallClock
    var tick: Swift.Duration = .milliseconds(20)

    public init(
        engine: PolicyEngine, database: TeamDatabase, team: TeamConfiguration, status: TeamStatus, logger: Logger,
        clock: any WallClock = SystemWallClock()
    ) {
        self.engine = engine
        self.database = database
        self.team = team
        self.status = status
        self.logger = logger
        self.clock = clock
    }

    /// Per lease: the last slice and when it was taken, to size the next one.
    struct Pace {
        var slice: NanoUSD = 0
        var takenAtMS: Int64 = 0
        var settledAtMS: Int64 = 0
        var emptyAtMS: Int64 = 0
    }

    public func run() async throws {
        var paces: [LeaseKey: Pace] = [:]
        var backoff = Backoff(first: .milliseconds(200), max: .seconds(5))
        var retryAtMS: Int64 = 0
        var migrated = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = clock.nowMS()
            if now >= retryAtMS {
                do {
                    if !migrated {
                        _ = try await database.run { [logger] connection in
                            try await TeamSchema.migrate(connection, logger: logger)
                        }
                        migrated = true
                        status.update { $0.schemaReady = true }
                    }
                    try await pass(&paces)
                    if backoff.failures > 0 { logger.notice("team: the team database answers again") }
                    backoff.reset()
                    engine.setTeamOnline(true)
                    status.update { $0.leaseError = nil }
                } catch {
                    let reason = describe(error)
                    if backoff.failures == 0 {
                        logger.warning(
                            "team: the team database cannot be reached (\(reason)); deciding team caps from the leases held, then team.offline = \(team.offline.rawValue)"
                        )
                    }
                    engine.setTeamOnline(false)
                    status.update { $0.leaseError = reason }
                    retryAtMS = clock.nowMS() + backoff.next().milliseconds
                }
            }
            try? await Task.sleep(for: tick)
        }
        await giveBack()
        await database.close()
    }

    /// One look at every lease: round trips only for those that need one.
    func pass(_ paces: inout [LeaseKey: Pace]) async throws {
        let now = clock.nowMS()
        for need in engine.leaseNeeds() {
            let key = need.key
            let lease = need.lease
            var pace = paces[key] ?? Pace()
            guard let cap = need.cap, key.periodMS == cap.window.teamPeriodStart(nowMS: now) else {
                // A past period, or a cap no longer a team cap: settle, give everything back, forget.
                try await roundTrip(key, lease, limit: lease.limitNanoUSD, want: 0, keep: lease.reservedNanoUSD)
                engine.dropLease(key)
                paces[key] = nil
                continue
            }
            let limit = cap.limitNanoUSD ?? 0
            let base = max(1, NanoUSD(Double(limit) * team.leaseFraction))
            let available = lease.expiresAtMS > now ? lease.availableNanoUSD : 0
            // Take more when less than half a slice is left; a lease emptied within a second
            // of the last take gets a slice twice as large (up to a third of the cap).
            let lowWater = max(base, pace.slice) / 2
            let teamEmpty = (lease.teamUnleasedNanoUSD ?? 1) <= 0 && now - pace.emptyAtMS < 1000
            let wantsMore =
                lease.synced && available < lowWater && !teamEmpty
                && now - lease.wantedAtMS < 600_000
            let unsettled = lease.usedNanoUSD > lease.reportedNanoUSD && now - pace.settledAtMS >= 1000
            let expiring =
                lease.grantedNanoUSD > lease.returnedNanoUSD + lease.usedNanoUSD
                && lease.expiresAtMS - now < team.leaseTTLMS / 2
            guard !lease.synced || wantsMore || unsettled || expiring else { continue }
            var want: NanoUSD = 0
            if !lease.synced || wantsMore {
                want = now - pace.takenAtMS < 1000 ? min(max(base, pace.slice * 2), max(base, limit / 3)) : base
                pace.slice = want
                pace.takenAtMS = now
            }
            let grant = try await roundTrip(key, lease, limit: limit, want: want, keep: nil)
            pace.settledAtMS = now
            if grant.teamUnleasedNanoUSD <= 0 { pace.emptyAtMS = now }
            paces[key] = pace
        }
    }

    /// One call of `spendwall_lease`; applies its answer to the engine.
    @discardableResult
    func roundTrip(_ key: LeaseKey, _ lease: Lease, limit: NanoUSD, want: NanoUSD, keep: NanoUSD?) async throws
        -> LeaseGrant
    {
        let sentUsed = lease.synced ? lease.usedNanoUSD : 0
        let (machine, ttl, logger) = (team.machine, team.leaseTTLMS, self.logger)
        let startMS = clock.nowMS()
        let row = try await database.run { connection in
            let rows = try await connection.query(
                """
                SELECT granted, returned, used, unleased FROM spendwall_lease(
                    \(machine), \(key.cap), \(key.key), \(key.periodMS), \(limit), \(sentUsed), \(want), \(keep), \(ttl))
                """, logger: logger)
            for try await row in rows.decode((Int64, Int64, Int64, Int64).self) { return row }
            throw TeamTimeout()
        }
        status.update { $0.leaseRoundTrips += 1 }
        // The lease is good until its expiry counted from before the request left (the
        // database's own expiry is later), less a margin for clocks that drift.
        let grant = LeaseGrant(
            grantedNanoUSD: row.0, returnedNanoUSD: row.1, usedNanoUSD: row.2,
            expiresAtMS: keep == 0 ? 0 : startMS + ttl - min(5_000, ttl / 10), teamUnleasedNanoUSD: row.3)
        engine.applyLease(grant, for: key, sentUsed: sentUsed, limit: limit)
        return grant
    }

    /// At a clean stop: settles every lease and gives back all but what calls in flight hold.
    func giveBack() async {
        for need in engine.leaseNeeds() where need.lease.synced {
            do {
                try await roundTrip(
                    need.key, need.lease, limit: need.lease.limitNanoUSD, want: 0, keep: need.lease.reservedNanoUSD)
            } catch {
                logger.warning(
                    "team: could not give back the lease on \(need.key) (\(describe(error))); it returns to the team when it expires"
                )
                return
            }
        }
    }
}

extension Swift.Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
