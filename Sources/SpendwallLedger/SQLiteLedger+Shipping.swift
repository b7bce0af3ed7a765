import GRDB
import SpendwallCore

extension SQLiteLedger: ShippingSource {
    public func shippedMark() async throws -> Int64 {
        try await writer.read { db in
            try Int64.fetchOne(db, sql: "SELECT shipped_id FROM team_shipping WHERE id = 1") ?? 0
        }
    }

    public func rows(after id: Int64, limit: Int) async throws -> [(id: Int64, event: SpendEvent)] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM spend_events WHERE id > ? ORDER BY id LIMIT ?", arguments: [id, limit]
            ).map { (id: $0["id"], event: EventColumns.event(from: $0)) }
        }
    }

    public func moveShippedMark(from: Int64, to: Int64, atMS: Int64) async throws -> Bool {
        try await writer.write { db in
            try db.execute(
                sql: "UPDATE team_shipping SET shipped_id = ?, shipped_ms = ? WHERE id = 1 AND shipped_id = ?",
                arguments: [to, atMS, from])
            return db.changesCount > 0
        }
    }

    public func shippingBacklog() async throws -> ShippingBacklog {
        try await writer.read { db in
            let mark = try Row.fetchOne(db, sql: "SELECT shipped_id, shipped_ms FROM team_shipping WHERE id = 1")
            let shipped: Int64 = mark?["shipped_id"] ?? 0
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT (SELECT COALESCE(MAX(id), 0) FROM spend_events) AS last_id,
                           COUNT(*) AS n, MIN(time_ms) AS oldest
                    FROM spend_events WHERE id > ?
                    """,
                arguments: [shipped])
            return ShippingBacklog(
                shippedID: shipped, lastID: row?["last_id"] ?? 0, rows: row?["n"] ?? 0,
                oldestUnshippedMS: row?["oldest"], shippedAtMS: mark?["shipped_ms"])
        }
    }
}
