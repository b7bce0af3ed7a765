import Logging
import PostgresNIO
import SpendwallCore
import SpendwallLedger

/// Reads the team ledger: every machine's rows, as shipped (`spendwall ls --team`).
public struct TeamLedger: Sendable {
    /// What team spend can be grouped by: the local groupings and `machine`.
    public static let groupings = SpendGrouping.allCases.map(\.rawValue) + ["machine"]

    let database: TeamDatabase
    let logger: Logger

    public init(database: TeamDatabase, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Totals grouped by one of ``groupings`` for rows at or after `sinceMS`.
    public func spend(by grouping: String, sinceMS: Int64) async throws -> SpendSummary {
        let sums = """
            COUNT(*)::BIGINT, COALESCE(SUM(input_tokens), 0)::BIGINT, COALESCE(SUM(output_tokens), 0)::BIGINT,
            COALESCE(SUM(cache_read_tokens), 0)::BIGINT, COALESCE(SUM(cache_write_tokens), 0)::BIGINT,
            COALESCE(SUM(reasoning_tokens), 0)::BIGINT, COALESCE(SUM(cache_write_1h_tokens), 0)::BIGINT,
            COALESCE(SUM(cost_nanousd), 0)::BIGINT
            """
        let keyed: String
        switch grouping {
        case "tag":
            keyed = """
                SELECT t.key || '=' || t.value AS k, \(sums) FROM team_events, jsonb_each_text(team_events.tags) AS t
                WHERE time_ms >= $1 GROUP BY k ORDER BY 9 DESC, 2 DESC
                """
        default:
            keyed = """
                SELECT \(Self.expression(grouping)) AS k, \(sums) FROM team_events
                WHERE time_ms >= $1 GROUP BY k ORDER BY 9 DESC, 2 DESC
                """
        }
        let total = "SELECT '' AS k, \(sums) FROM team_events WHERE time_ms >= $1"
        let logger = self.logger
        return try await database.run { connection in
            func read(_ sql: String) async throws -> [(key: String, totals: SpendTotals)] {
                var binds = PostgresBindings()
                binds.append(sinceMS)
                var result: [(key: String, totals: SpendTotals)] = []
                let rows = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
                for try await (key, calls, i, o, cr, cw, r, cw1h, cost) in rows.decode(
                    (String?, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64).self)
                {
                    result.append(
                        (
                            key: key ?? "(none)",
                            totals: SpendTotals(
                                calls: calls,
                                usage: Usage(
                                    inputTokens: i, outputTokens: o, cacheReadTokens: cr, cacheWriteTokens: cw,
                                    reasoningTokens: r, cacheWrite1hTokens: cw1h),
                                costNanoUSD: cost)
                        ))
                }
                return result
            }
            let rows = try await read(keyed)
            let totals = try await read(total).first?.totals ?? SpendTotals()
            return SpendSummary(total: totals, rows: rows)
        }
    }

    static func expression(_ grouping: String) -> String {
        switch grouping {
        case "agent": return "COALESCE(agent, '(none)')"
        case "model": return "model"
        case "session": return "COALESCE(session, '(none)')"
        case "provider": return "provider"
        case "outcome": return "outcome"
        case "machine": return "machine"
        case "day": return "to_char(to_timestamp(time_ms / 1000.0), 'YYYY-MM-DD')"
        default: return "app"
        }
    }
}
