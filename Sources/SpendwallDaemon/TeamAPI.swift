import Foundation
import NIOHTTP1
import SpendwallConfig
import SpendwallCore
import SpendwallLedger
import SpendwallPolicy
import SpendwallTeam

/// The socket API's team routes: `GET /v1/team` (leases, shipping backlog, the database's
/// state) and `GET /v1/team/spend` (the team ledger, every machine's rows).
struct TeamAPI: Sendable {
    /// Present only in team mode.
    struct Mode: Sendable {
        let configuration: TeamConfiguration
        let status: TeamStatus
        let ledger: TeamLedger
        let shipping: any ShippingSource
    }

    let mode: Mode?
    let engine: PolicyEngine
    let clock: any WallClock

    func reply(to request: APIRequest) -> APIReply? {
        switch (request.method, request.path) {
        case (.GET, "/v1/team"): return .later { await status() }
        case (.GET, "/v1/team/spend"): return .later { await spend(request) }
        case (_, "/v1/team"), (_, "/v1/team/spend"):
            return .now(
                .error(SpendwallError(.methodNotAllowed, "\(request.path) takes GET"), status: .methodNotAllowed))
        default: return nil
        }
    }

    static let notConfigured = APIResponse.error(
        SpendwallError(
            .teamNotConfigured,
            "team mode is off: add [team] with database = \"postgres://user@host/db\" to spendwall.toml and restart the daemon"
        ), status: .conflict)

    struct LeaseJSON: Encodable {
        var cap: String
        var key: String
        var period_ms: Int64
        var limit_nanousd: Int64
        var granted_nanousd: Int64
        var returned_nanousd: Int64
        var used_nanousd: Int64
        var reserved_nanousd: Int64
        var available_nanousd: Int64
        var reported_nanousd: Int64
        var team_unleased_nanousd: Int64?
        var expires_at_ms: Int64
        var synced: Bool
    }

    struct ShippingJSON: Encodable {
        var shipped_id: Int64
        var last_id: Int64
        var behind_rows: Int64
        var oldest_unshipped_ms: Int64?
        var behind_ms: Int64
        var shipped_at_ms: Int64?
        var shipped_rows: Int64
        var round_trips: Int64
        var error: String?
    }

    struct StatusJSON: Encodable {
        var enabled: Bool
        var machine: String?
        var database: String?
        var offline: String?
        var online: Bool
        var schema_ready: Bool
        var lease_round_trips: Int64
        var lease_error: String?
        var leases: [LeaseJSON]
        var shipping: ShippingJSON?
    }

    func status() async -> APIResponse {
        guard let mode else {
            return .json(
                StatusJSON(
                    enabled: false, online: false, schema_ready: false, lease_round_trips: 0, leases: []))
        }
        let now = clock.nowMS()
        let snapshot = mode.status.snapshot
        let leases = engine.leaseNeeds().map { need in
            let l = need.lease
            return LeaseJSON(
                cap: need.key.cap, key: need.key.key, period_ms: need.key.periodMS, limit_nanousd: l.limitNanoUSD,
                granted_nanousd: l.grantedNanoUSD, returned_nanousd: l.returnedNanoUSD, used_nanousd: l.usedNanoUSD,
                reserved_nanousd: l.reservedNanoUSD,
                available_nanousd: l.expiresAtMS > now ? max(0, l.availableNanoUSD) : 0,
                reported_nanousd: l.reportedNanoUSD, team_unleased_nanousd: l.teamUnleasedNanoUSD,
                expires_at_ms: l.expiresAtMS, synced: l.synced)
        }.sorted { ($0.cap, $0.key, $0.period_ms) < ($1.cap, $1.key, $1.period_ms) }
        var shipping: ShippingJSON?
        if let backlog = try? await mode.shipping.shippingBacklog() {
            shipping = ShippingJSON(
                shipped_id: backlog.shippedID, last_id: backlog.lastID, behind_rows: backlog.rows,
                oldest_unshipped_ms: backlog.oldestUnshippedMS,
                behind_ms: backlog.oldestUnshippedMS.map { max(0, now - $0) } ?? 0,
                shipped_at_ms: backlog.shippedAtMS, shipped_rows: snapshot.shippedRows,
                round_trips: snapshot.shipRoundTrips, error: snapshot.shipError)
        }
        return .json(
            StatusJSON(
                enabled: true, machine: mode.configuration.machine, database: mode.configuration.displayURL,
                offline: mode.configuration.offline.rawValue, online: engine.teamOnline,
                schema_ready: snapshot.schemaReady, lease_round_trips: snapshot.leaseRoundTrips,
                lease_error: snapshot.leaseError, leases: leases, shipping: shipping))
    }

    struct TeamSpendAnswer: Encodable {
        var by: String
        var since: String
        var since_ms: Int64
        var machine: String
        var total: TotalsJSON
        var rows: [SpendRowJSON]
    }

    func spend(_ request: APIRequest) async -> APIResponse {
        guard let mode else { return Self.notConfigured }
        let by = request.query["by"] ?? "app"
        guard TeamLedger.groupings.contains(by) else {
            return .badRequest("by must be one of \(TeamLedger.groupings.joined(separator: ", ")), not \"\(by)\"")
        }
        let sinceText = request.query["since"] ?? "1d"
        guard let span = Duration.milliseconds(parsing: sinceText) else {
            return .badRequest("since must be a duration like 1h, 1d, 7d or 30d, not \"\(sinceText)\"")
        }
        let since = clock.nowMS() - span
        do {
            let summary = try await mode.ledger.spend(by: by, sinceMS: since)
            let total = summary.total
            return .json(
                TeamSpendAnswer(
                    by: by, since: sinceText, since_ms: since, machine: mode.configuration.machine,
                    total: SocketAPI.totals(total), rows: SocketAPI.rows(of: summary)))
        } catch {
            return .error(
                SpendwallError(
                    .teamUnavailable,
                    "the team database \(mode.configuration.displayURL) did not answer (\(error)); `spendwall doctor` shows team mode's state"
                ), status: .serviceUnavailable)
        }
    }
}
