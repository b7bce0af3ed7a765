import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import SpendwallCore
import SpendwallLedger

/// Ships every ledger row to the team database: in id order from the "shipped up to" mark
/// kept in the local ledger, in batches, idempotent by (machine, request id), retried with
/// backoff. An outage only makes the mark wait: shipping resumes from it, after a restart too.
public struct TeamShipper: Service {
    let source: any ShippingSource
    let database: TeamDatabase
    let machine: String
    let status: TeamStatus
    let logger: Logger
    var batchSize = 500
    var idle: Swift.Duration = .milliseconds(200)
    var backoff = Backoff(first: .milliseconds(250), max: .seconds(10))

    public init(source: any ShippingSource, database: TeamDatabase, machine: String, status: TeamStatus, logger: Logger)
    {
        self.source = source
        self.database = database
        self.machine = machine
        self.status = status
        self.logger = logger
    }

    public func run() async throws {
        var backoff = self.backoff
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let shipped = try await shipOnce()
                if backoff.failures > 0 { logger.notice("team: shipping rows again") }
                backoff.reset()
                if shipped == 0 { try? await Task.sleep(for: idle) }
            } catch {
                let reason = describe(error)
                status.update { $0.shipError = reason }
                if backoff.failures == 0 { logger.warning("team: cannot ship rows (\(reason)); retrying with backoff") }
                try? await Task.sleep(for: backoff.next())
            }
        }
        // A last pass at a clean stop, so rows written just before it are not left waiting.
        for _ in 0..<20 {
            guard let shipped = try? await shipOnce(), shipped > 0 else { break }
        }
        await database.close()
    }

    /// Ships the next batch; returns how many rows it shipped.
    func shipOnce() async throws -> Int {
        let mark = try await source.shippedMark()
        let rows = try await source.rows(after: mark, limit: batchSize)
        guard let last = rows.last?.id else { return 0 }
        let query = try Self.insert(rows, machine: machine)
        _ = try await database.run { [logger] connection in
            try await connection.query(query, logger: logger)
        }
        let moved = try await source.moveShippedMark(from: mark, to: last, atMS: SystemWallClock().nowMS())
        status.update {
            $0.shipRoundTrips += 1
            $0.shippedRows += Int64(rows.count)
            $0.shipError = nil
            $0.lastShipMS = SystemWallClock().nowMS()
        }
        // The mark moved meanwhile (a shipped row was replaced): the next pass reads from it.
        return moved ? rows.count : max(rows.count, 1)
    }

    static let columns = [
        "machine", "request_id", "local_id", "time_ms", "path", "provider", "model", "agent", "app", "session",
        "tags", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
        "reasoning_tokens", "cost_nanousd", "reserved_nanousd", "priced", "status", "outcome", "duration_ms",
        "estimated",
    ]

    /// One multi-row upsert: a row shipped twice (a retry after a lost answer) is written once;
    /// a row that replaced an `unreported` placeholder overwrites it.
    static func insert(_ rows: [(id: Int64, event: SpendEvent)], machine: String) throws -> PostgresQuery {
        var binds = PostgresBindings(capacity: rows.count * columns.count)
        var tuples: [String] = []
        tuples.reserveCapacity(rows.count)
        for (id, e) in rows {
            let base = binds.count
            binds.append(machine)
            binds.append(e.requestID)
            binds.append(id)
            binds.append(e.timeMS)
            binds.append(e.path.rawValue)
            binds.append(e.provider.rawValue)
            binds.append(e.model)
            binds.append(e.agent)
            binds.append(e.app)
            binds.append(e.session)
            binds.append(tagsJSON(e.tags))
            binds.append(e.usage.inputTokens)
            binds.append(e.usage.outputTokens)
            binds.append(e.usage.cacheReadTokens)
            binds.append(e.usage.cacheWriteTokens)
            binds.append(e.usage.cacheWrite1hTokens)
            binds.append(e.usage.reasoningTokens)
            binds.append(e.costNanoUSD)
            binds.append(e.reservedNanoUSD)
            binds.append(e.priced)
            binds.append(e.status)
            binds.append(e.outcome.rawValue)
            binds.append(e.durationMS)
            binds.append(e.estimated)
            let placeholders = (1...columns.count).map { index in
                index == 11 ? "$\(base + index)::jsonb" : "$\(base + index)"
            }
            tuples.append("(" + placeholders.joined(separator: ", ") + ")")
        }
        let updates = columns.dropFirst(2).map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")
        let sql = """
            INSERT INTO team_events (\(columns.joined(separator: ", "))) VALUES \(tuples.joined(separator: ", "))
            ON CONFLICT (machine, request_id) DO UPDATE SET \(updates)
            """
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }

    static func tagsJSON(_ tags: [String: String]) -> String {
        guard !tags.isEmpty else { return "{}" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? String(decoding: encoder.encode(tags), as: UTF8.self)) ?? "{}"
    }
}

/// Exponential backoff with jitter, reset by a success.
struct Backoff: Sendable {
    var first: Swift.Duration
    var max: Swift.Duration
    private(set) var failures = 0

    init(first: Swift.Duration, max: Swift.Duration) {
        self.first = first
        self.max = max
    }

    mutating func next() -> Swift.Duration {
        failures += 1
        let exponent = Swift.min(failures - 1, 16)
        let base = Swift.min(first * (1 << exponent), max)
        return base * Double.random(in: 0.75...1.0)
    }

    mutating func reset() { failures = 0 }
}
