import Foundation
import GRDB
import SpendwallCore

/// The ledger in SQLite (WAL), through GRDB. Takes any `DatabaseWriter`, so tests can pass an
/// in-memory `DatabaseQueue()`.
public struct SQLiteLedger: LedgerStore {
    public let writer: any DatabaseWriter

    /// Opens (creating if needed) the ledger file in WAL mode and migrates it.
    public static func open(path: String) throws -> SQLiteLedger {
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        return try SQLiteLedger(writer: DatabasePool(path: path, configuration: config))
    }

    public init(writer: any DatabaseWriter) throws {
        self.writer = writer
        try LedgerMigrations.migrator.migrate(writer)
    }

    public func append(_ events: [SpendEvent]) throws -> [AppendResult] {
        try writer.write { db in try events.map { try Self.append($0, in: db) } }
    }

    static func append(_ event: SpendEvent, in db: Database) throws -> AppendResult {
        let values = EventColumns.values(of: event)
        let insert = try db.cachedStatement(
            sql: "INSERT OR IGNORE INTO spend_events (\(EventColumns.list)) VALUES (\(EventColumns.placeholders))")
        try insert.execute(arguments: StatementArguments(values))
        if db.changesCount > 0 { return .inserted }
        let existing = try Row.fetchOne(
            db, sql: "SELECT outcome, cost_nanousd FROM spend_events WHERE request_id = ?",
            arguments: [event.requestID])
        let outcome: String = existing?["outcome"] ?? ""
        let cost: Int64 = existing?["cost_nanousd"] ?? 0
        guard outcome == Outcome.unreported.rawValue, event.outcome != .unreported else {
            return .duplicate(existingCostNanoUSD: cost)
        }
        try db.execute(sql: "DELETE FROM spend_events WHERE request_id = ?", arguments: [event.requestID])
        try db.execute(
            sql: "INSERT INTO spend_events (\(EventColumns.list)) VALUES (\(EventColumns.placeholders))",
            arguments: StatementArguments(values))
        return .replacedUnreported(previousCostNanoUSD: cost)
    }

    public func event(requestID: String) async throws -> SpendEvent? {
        try await writer.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM spend_events WHERE request_id = ?", arguments: [requestID]
            ).map(EventColumns.event(from:))
        }
    }

    public func recent(limit: Int, sinceMS: Int64, agent: String? = nil) async throws -> [SpendEvent] {
        try await writer.read { db in
            if let agent {
                return try Row.fetchAll(
                    db,
                    sql: """
                        SELECT * FROM spend_events WHERE time_ms >= ? AND agent = ?
                        ORDER BY time_ms DESC, id DESC LIMIT ?
                        """,
                    arguments: [sinceMS, agent, limit]
                ).map(EventColumns.event(from:))
            }
            return try Row.fetchAll(
                db, sql: "SELECT * FROM spend_events WHERE time_ms >= ? ORDER BY time_ms DESC, id DESC LIMIT ?",
                arguments: [sinceMS, limit]
            ).map(EventColumns.event(from:))
        }
    }

    public func spend(by grouping: SpendGrouping, sinceMS: Int64) async throws -> SpendSummary {
        let sums = """
            COUNT(*) AS calls, SUM(input_tokens) AS i, SUM(output_tokens) AS o,
            SUM(cache_read_tokens) AS cr, SUM(cache_write_tokens) AS cw,
            SUM(reasoning_tokens) AS r, SUM(cache_write_1h_tokens) AS cw1h, SUM(cost_nanousd) AS cost
            """
        let keyed: String
        switch grouping {
        case .tag:
            keyed = """
                SELECT t.key || '=' || t.value AS k, \(sums)
                FROM spend_events, json_each(spend_events.tags) AS t
                WHERE time_ms >= ? GROUP BY k ORDER BY cost DESC, calls DESC
                """
        default:
            keyed = """
                SELECT \(Self.groupExpression(grouping)) AS k, \(sums)
                FROM spend_events WHERE time_ms >= ? GROUP BY k ORDER BY cost DESC, calls DESC
                """
        }
        return try await writer.read { db in
            let rows = try Row.fetchAll(db, sql: keyed, arguments: [sinceMS]).map { row in
                (key: (row["k"] as String?) ?? "(none)", totals: Self.totals(row))
            }
            // Every row falls in exactly one group (but for tags, of which a row has any number):
            // the total is the groups' sum, without a second scan of the ledger.
            guard grouping == .tag else {
                var total = SpendTotals()
                for row in rows {
                    total.calls += row.totals.calls
                    let u = row.totals.usage
                    total.usage.inputTokens += u.inputTokens
                    total.usage.outputTokens += u.outputTokens
                    total.usage.cacheReadTokens += u.cacheReadTokens
                    total.usage.cacheWriteTokens += u.cacheWriteTokens
                    total.usage.reasoningTokens += u.reasoningTokens
                    total.usage.cacheWrite1hTokens += u.cacheWrite1hTokens
                    total.costNanoUSD += row.totals.costNanoUSD
                }
                return SpendSummary(total: total, rows: rows)
            }
            let totalRow = try Row.fetchOne(
                db, sql: "SELECT \(sums) FROM spend_events WHERE time_ms >= ?", arguments: [sinceMS])
            return SpendSummary(total: totalRow.map(Self.totals) ?? SpendTotals(), rows: rows)
        }
    }

    public func spendSeries(by grouping: SpendGrouping, bucket: SpendBucket, sinceMS: Int64) async throws
        -> [SpendPoint]
    {
        let bucketExpression =
            bucket == .day
            ? "date(time_ms / 1000, 'unixepoch', 'localtime')"
            : "strftime('%Y-%m-%d %H:00', time_ms / 1000, 'unixepoch', 'localtime')"
        let key = grouping == .tag ? "'(all)'" : Self.groupExpression(grouping)
        let sql = """
            SELECT \(bucketExpression) AS b, \(key) AS k, COUNT(*) AS calls, SUM(cost_nanousd) AS cost
            FROM spend_events WHERE time_ms >= ? GROUP BY b, k ORDER BY b, cost DESC
            """
        return try await writer.read { db in
            try Row.fetchAll(db, sql: sql, arguments: [sinceMS]).map { row in
                SpendPoint(
                    bucket: row["b"] ?? "", key: (row["k"] as String?) ?? "(none)", calls: row["calls"] ?? 0,
                    costNanoUSD: row["cost"] ?? 0)
            }
        }
    }

    static func groupExpression(_ grouping: SpendGrouping) -> String {
        switch grouping {
        case .app: return "app"
        case .agent: return "COALESCE(agent, '(none)')"
        case .model: return "model"
        case .session: return "COALESCE(session, '(none)')"
        case .provider: return "provider"
        case .outcome: return "outcome"
        case .day: return "date(time_ms / 1000, 'unixepoch', 'localtime')"
        case .tag: return "tags"
        }
    }

    static func totals(_ row: Row) -> SpendTotals {
        SpendTotals(
            calls: row["calls"] ?? 0,
            usage: Usage(
                inputTokens: row["i"] ?? 0, outputTokens: row["o"] ?? 0, cacheReadTokens: row["cr"] ?? 0,
                cacheWriteTokens: row["cw"] ?? 0, reasoningTokens: row["r"] ?? 0,
                cacheWrite1hTokens: row["cw1h"] ?? 0),
            costNanoUSD: row["cost"] ?? 0)
    }

    public func windowSpend(sinceMS: Int64) async throws -> [WindowSpend] {
        try await writer.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT (time_ms / 10000) * 10000 + 9999 AS t, provider, model, agent, app, session, tags,
                           SUM(cost_nanousd) AS cost,
                           SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens) AS tokens
                    FROM spend_events WHERE time_ms >= ? AND outcome != 'blocked'
                    GROUP BY t, provider, model, agent, app, session, tags
                    """,
                arguments: [sinceMS])
            return rows.compactMap { row in
                guard let provider = Provider(rawValue: row["provider"] ?? "") else { return nil }
                let call = CallAttributes(
                    provider: provider, model: row["model"] ?? "", agent: row["agent"], app: row["app"] ?? "unknown",
                    session: row["session"], tags: EventColumns.decodeTags(row["tags"]))
                return WindowSpend(
                    attributes: call, costNanoUSD: row["cost"] ?? 0, tokens: row["tokens"] ?? 0, timeMS: row["t"] ?? 0)
            }
        }
    }

    public func recentOutputs(limit: Int) async throws -> [(agent: String?, model: String, outputTokens: Int64)] {
        try await writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT agent, model, output_tokens FROM spend_events
                    WHERE outcome = 'ok' AND estimated = 0 ORDER BY id DESC LIMIT ?
                    """,
                arguments: [limit]
            ).reversed().map { (agent: $0["agent"], model: $0["model"] ?? "", outputTokens: $0["output_tokens"] ?? 0) }
        }
    }

    public func savePendingReservations(_ bodies: [String: String]) async throws {
        try await writer.write { db in
            try db.execute(sql: "DELETE FROM pending_reservations")
            for (id, body) in bodies {
                try db.execute(sql: "INSERT INTO pending_reservations (id, body) VALUES (?, ?)", arguments: [id, body])
            }
        }
    }

    public func takePendingReservations() async throws -> [String: String] {
        try await writer.write { db in
            var result: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, body FROM pending_reservations") {
                result[row["id"]] = row["body"]
            }
            try db.execute(sql: "DELETE FROM pending_reservations")
            return result
        }
    }

    public func recordKill(_ flip: KillFlip) async throws {
        try await writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO kill_flips (time_ms, kind, value, turned_on, peer_pid, peer_uid, peer_exe)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    flip.timeMS, flip.scope.kind, flip.scope.value, flip.on, flip.peerPID.map { Int64($0) },
                    flip.peerUID.map { Int64($0) }, flip.peerExe,
                ])
            if flip.on {
                try db.execute(
                    sql: "INSERT OR IGNORE INTO kill_switches (kind, value, since_ms) VALUES (?, ?, ?)",
                    arguments: [flip.scope.kind, flip.scope.value ?? "", flip.timeMS])
            } else {
                try db.execute(
                    sql: "DELETE FROM kill_switches WHERE kind = ? AND value = ?",
                    arguments: [flip.scope.kind, flip.scope.value ?? ""])
            }
        }
    }

    public func activeKills() async throws -> [KillScope] {
        try await writer.read { db in
            try Row.fetchAll(db, sql: "SELECT kind, value FROM kill_switches ORDER BY since_ms").compactMap { row in
                let value: String = row["value"]
                return KillScope(kind: row["kind"], value: value.isEmpty ? nil : value)
            }
        }
    }

    public func killFlips(limit: Int) async throws -> [KillFlip] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM kill_flips ORDER BY id DESC LIMIT ?", arguments: [limit]
            ).compactMap { row in
                guard let scope = KillScope(kind: row["kind"], value: row["value"]) else { return nil }
                let pid: Int64? = row["peer_pid"]
                let uid: Int64? = row["peer_uid"]
                return KillFlip(
                    timeMS: row["time_ms"], scope: scope, on: row["turned_on"], peerPID: pid.map { Int32($0) },
                    peerUID: uid.map { UInt32($0) }, peerExe: row["peer_exe"])
            }
        }
    }

    public func insertApproval(_ a: ApprovalRecord) async throws {
        try await writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO approvals (id, created_ms, provider, model, agent, app, session, peer_pid,
                        estimated_nanousd, cap, cap_key, reason, status)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    a.id, a.createdMS, a.provider, a.model, a.agent, a.app, a.session, a.peerPID.map { Int64($0) },
                    a.estimatedNanoUSD, a.cap, a.capKey, a.reason, a.status.rawValue,
                ])
        }
    }

    public func resolveApproval(
        id: String, status: ApprovalRecord.Status, resolution: String, atMS: Int64, byPID: Int32?, byExe: String?
    ) async throws -> Bool {
        try await writer.write { db in
            try db.execute(
                sql: """
                    UPDATE approvals SET status = ?, resolution = ?, resolved_ms = ?, resolved_by_pid = ?,
                        resolved_by_exe = ?
                    WHERE id = ? AND status = 'pending'
                    """,
                arguments: [status.rawValue, resolution, atMS, byPID.map { Int64($0) }, byExe, id])
            return db.changesCount > 0
        }
    }

    public func approvals(status: ApprovalRecord.Status?, limit: Int) async throws -> [ApprovalRecord] {
        try await writer.read { db in
            let rows: [Row]
            if let status {
                rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM approvals WHERE status = ? ORDER BY created_ms DESC LIMIT ?",
                    arguments: [status.rawValue, limit])
            } else {
                rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM approvals ORDER BY created_ms DESC LIMIT ?", arguments: [limit])
            }
            return rows.map { row in
                let pid: Int64? = row["peer_pid"]
                let byPID: Int64? = row["resolved_by_pid"]
                var record = ApprovalRecord(
                    id: row["id"], createdMS: row["created_ms"], provider: row["provider"], model: row["model"],
                    agent: row["agent"], app: row["app"], session: row["session"], peerPID: pid.map { Int32($0) },
                    estimatedNanoUSD: row["estimated_nanousd"], cap: row["cap"], capKey: row["cap_key"],
                    reason: row["reason"], status: ApprovalRecord.Status(rawValue: row["status"]) ?? .expired)
                record.resolvedMS = row["resolved_ms"]
                record.resolution = row["resolution"]
                record.resolvedByPID = byPID.map { Int32($0) }
                record.resolvedByExe = row["resolved_by_exe"]
                return record
            }
        }
    }

    public func expirePendingApprovals(resolution: String, atMS: Int64) async throws -> Int {
        try await writer.write { db in
            try db.execute(
                sql:
                    "UPDATE approvals SET status = 'expired', resolution = ?, resolved_ms = ? WHERE status = 'pending'",
                arguments: [resolution, atMS])
            return db.changesCount
        }
    }

    public func ping() async throws {
        _ = try await writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pending_reservations") }
    }
}
