import Foundation
import GRDB
import SpendwallCore

extension SQLiteLedger {
    public func insertSession(_ s: SessionRecord) async throws {
        let command = String(decoding: try JSONEncoder().encode(s.command), as: UTF8.self)
        try await writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO sessions (id, name, command, cwd, git_branch, git_head, agent, tags, budget_nanousd,
                        budget_tokens, terminal, pid, started_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    s.id, s.name, command, s.cwd, s.gitBranch, s.gitHead, s.agent, EventColumns.encodeTags(s.tags),
                    s.budgetNanoUSD, s.budgetTokens, s.terminal, s.pid.map { Int64($0) }, s.startedMS,
                ])
        }
    }

    public func finishSession(id: String, ending: SessionEnding, artifacts: [SessionArtifact]) async throws -> Bool {
        try await writer.write { db in
            try db.execute(
                sql: """
                    UPDATE sessions SET ended_ms = ?, exit_code = ?, exit_signal = ?, stop_reason = ?, resume_command = ?
                    WHERE id = ? AND ended_ms IS NULL
                    """,
                arguments: [
                    ending.endedMS, ending.exitCode.map { Int64($0) }, ending.exitSignal.map { Int64($0) },
                    ending.stopReason.rawValue, ending.resumeCommand, id,
                ])
            guard db.changesCount > 0 else { return false }
            for artifact in artifacts {
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO session_artifacts (session, kind, created_ms, truncated, content)
                        VALUES (?, ?, ?, ?, ?)
                        """,
                    arguments: [id, artifact.kind, artifact.createdMS, artifact.truncated, Data(artifact.content)])
            }
            return true
        }
    }

    public func session(id: String) async throws -> SessionRecord? {
        try await writer.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [id]).map(Self.session(from:))
        }
    }

    public func sessions(limit: Int) async throws -> [SessionRecord] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM sessions ORDER BY started_ms DESC, rowid DESC LIMIT ?", arguments: [limit]
            ).map(Self.session(from:))
        }
    }

    public func runningSessions() async throws -> [SessionRecord] {
        try await writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM sessions WHERE ended_ms IS NULL").map(Self.session(from:))
        }
    }

    public func sessionSpend(id: String) async throws -> SessionSpend {
        let sums = """
            COUNT(*) AS calls, SUM(input_tokens) AS i, SUM(output_tokens) AS o,
            SUM(cache_read_tokens) AS cr, SUM(cache_write_tokens) AS cw,
            SUM(reasoning_tokens) AS r, SUM(cost_nanousd) AS cost
            """
        // Refused calls (cost 0) are rows too, but not calls the session made.
        let billed = "session = ? AND outcome NOT IN ('blocked', 'killed') OR session = ? AND cost_nanousd > 0"
        return try await writer.read { db in
            let total = try Row.fetchOne(
                db, sql: "SELECT \(sums) FROM spend_events WHERE \(billed)", arguments: [id, id])
            let models = try Row.fetchAll(
                db,
                sql: "SELECT model, \(sums) FROM spend_events WHERE \(billed) GROUP BY model ORDER BY cost DESC",
                arguments: [id, id])
            return SessionSpend(
                total: total.map(Self.totals) ?? SpendTotals(),
                byModel: models.map { (model: $0["model"] ?? "", totals: Self.totals($0)) })
        }
    }

    public func sessionArtifacts(id: String, withContent: Bool) async throws -> [SessionArtifact] {
        let content = withContent ? "content" : "length(content) AS size"
        return try await writer.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT kind, created_ms, truncated, \(content) FROM session_artifacts WHERE session = ? ORDER BY kind",
                arguments: [id]
            ).map { row in
                let bytes: [UInt8] = withContent ? [UInt8]((row["content"] as Data?) ?? Data()) : []
                return SessionArtifact(
                    kind: row["kind"], createdMS: row["created_ms"], truncated: row["truncated"], content: bytes,
                    size: withContent ? bytes.count : (row["size"] ?? 0))
            }
        }
    }

    static func session(from row: Row) -> SessionRecord {
        let commandText: String = row["command"] ?? "[]"
        let command = (try? JSONDecoder().decode([String].self, from: Data(commandText.utf8))) ?? []
        let pid: Int64? = row["pid"]
        var record = SessionRecord(
            id: row["id"], name: row["name"], command: command, cwd: row["cwd"], gitBranch: row["git_branch"],
            gitHead: row["git_head"], agent: row["agent"], tags: EventColumns.decodeTags(row["tags"]),
            budgetNanoUSD: row["budget_nanousd"], budgetTokens: row["budget_tokens"], terminal: row["terminal"],
            pid: pid.map { Int32($0) }, startedMS: row["started_ms"])
        record.endedMS = row["ended_ms"]
        let exitCode: Int64? = row["exit_code"]
        let exitSignal: Int64? = row["exit_signal"]
        record.exitCode = exitCode.map { Int32($0) }
        record.exitSignal = exitSignal.map { Int32($0) }
        record.stopReason = (row["stop_reason"] as String?).flatMap(SessionRecord.StopReason.init(rawValue:))
        record.resumeCommand = row["resume_command"]
        return record
    }
}
