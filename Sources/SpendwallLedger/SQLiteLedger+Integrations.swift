import GRDB

extension SQLiteLedger: IntegrationStore {
    public func insertDeadLetter(_ letter: DeadLetter) async throws -> Int64 {
        try await writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO alert_dead_letters (created_ms, transport, kind, event, attempts, last_error, status)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    letter.createdMS, letter.transport, letter.kind, letter.event, letter.attempts, letter.lastError,
                    letter.status.rawValue,
                ])
            return db.lastInsertedRowID
        }
    }

    public func deadLetters(status: DeadLetter.Status?, limit: Int) async throws -> [DeadLetter] {
        try await writer.read { db in
            let rows: [Row]
            if let status {
                rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM alert_dead_letters WHERE status = ? ORDER BY id DESC LIMIT ?",
                    arguments: [status.rawValue, limit])
            } else {
                rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM alert_dead_letters ORDER BY id DESC LIMIT ?", arguments: [limit])
            }
            return rows.map(Self.deadLetter(from:))
        }
    }

    public func deadLetter(id: Int64) async throws -> DeadLetter? {
        try await writer.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM alert_dead_letters WHERE id = ?", arguments: [id])
                .map(Self.deadLetter(from:))
        }
    }

    public func markRetried(id: Int64, atMS: Int64) async throws {
        try await writer.write { db in
            try db.execute(
                sql: "UPDATE alert_dead_letters SET status = 'retried', retried_ms = ? WHERE id = ?",
                arguments: [atMS, id])
        }
    }

    static func deadLetter(from row: Row) -> DeadLetter {
        DeadLetter(
            id: row["id"], createdMS: row["created_ms"], transport: row["transport"], kind: row["kind"],
            event: row["event"], attempts: row["attempts"], lastError: row["last_error"],
            status: DeadLetter.Status(rawValue: row["status"]) ?? .dead, retriedMS: row["retried_ms"])
    }

    public func insertStripeEvent(_ event: StoredStripeEvent) async throws -> Bool {
        try await writer.write { db in
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO stripe_events (id, type, created, livemode, received_ms, payload)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    event.id, event.type, event.created, event.livemode.map { $0 ? 1 : 0 }, event.receivedMS,
                    event.payload,
                ])
            return db.changesCount > 0
        }
    }

    public func upsertReconciliations(_ rows: [ReconciliationRecord]) async throws {
        try await writer.write { db in
            for r in rows {
                try db.execute(
                    sql: """
                        INSERT INTO reconciliations
                            (period, provider, source, reference, billed_nanousd, ledger_nanousd, drift_nanousd, updated_ms)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (period, provider, source, reference) DO UPDATE SET
                            billed_nanousd = excluded.billed_nanousd, ledger_nanousd = excluded.ledger_nanousd,
                            drift_nanousd = excluded.drift_nanousd, updated_ms = excluded.updated_ms
                        """,
                    arguments: [
                        r.period, r.provider, r.source, r.reference, r.billedNanoUSD, r.ledgerNanoUSD, r.driftNanoUSD,
                        r.updatedMS,
                    ])
            }
        }
    }

    public func reconciliations(period: String?) async throws -> [ReconciliationRecord] {
        try await writer.read { db in
            let sql =
                "SELECT * FROM reconciliations \(period == nil ? "" : "WHERE period = ?") ORDER BY period, provider, source, reference"
            let rows = try Row.fetchAll(db, sql: sql, arguments: period.map { [$0] } ?? [])
            return rows.map { row in
                ReconciliationRecord(
                    period: row["period"], provider: row["provider"], source: row["source"],
                    reference: row["reference"], billedNanoUSD: row["billed_nanousd"],
                    ledgerNanoUSD: row["ledger_nanousd"], driftNanoUSD: row["drift_nanousd"],
                    updatedMS: row["updated_ms"])
            }
        }
    }

    public func providerSpend(provider: String, fromMS: Int64, toMS: Int64) async throws -> Int64 {
        try await writer.read { db in
            try Int64.fetchOne(
                db,
                sql: """
                    SELECT COALESCE(SUM(cost_nanousd), 0) FROM spend_events
                    WHERE provider = ? AND time_ms >= ? AND time_ms < ?
                    """,
                arguments: [provider, fromMS, toMS]) ?? 0
        }
    }
}
