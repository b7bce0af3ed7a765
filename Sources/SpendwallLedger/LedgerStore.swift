import SpendwallCore

/// Where spend is stored. The daemon talks to this protocol, so another store (team mode's
/// PostgreSQL shipping) can sit beside or behind the SQLite one.
public protocol LedgerStore: SessionStore {
    /// Appends events in one transaction, idempotent by request id. Blocks the calling thread
    /// until they are committed: the ``LedgerWriter`` calls it from a thread of its own.
    func append(_ events: [SpendEvent]) throws -> [AppendResult]
    /// The row for a request id, if any.
    func event(requestID: String) async throws -> SpendEvent?
    /// Totals grouped by `grouping` for rows at or after `sinceMS`.
    func spend(by grouping: SpendGrouping, sinceMS: Int64) async throws -> SpendSummary
    /// Spend per time bucket (local day or hour) and per `grouping` key, for rows at or after
    /// `sinceMS`: the panel's stacked charts.
    func spendSeries(by grouping: SpendGrouping, bucket: SpendBucket, sinceMS: Int64) async throws -> [SpendPoint]
    /// The newest rows, newest first (only one agent's, when `agent` is given).
    func recent(limit: Int, sinceMS: Int64, agent: String?) async throws -> [SpendEvent]
    /// Spend since `sinceMS`, aggregated in 10-second buckets, for rebuilding windows.
    func windowSpend(sinceMS: Int64) async throws -> [WindowSpend]
    /// The output tokens of the newest `limit` calls that completed with real usage, oldest first.
    func recentOutputs(limit: Int) async throws -> [(agent: String?, model: String, outputTokens: Int64)]
    /// Saves the JSON of reservations in flight at a clean stop, replacing any saved before.
    func savePendingReservations(_ bodies: [String: String]) async throws
    /// Loads and clears the saved reservations.
    func takePendingReservations() async throws -> [String: String]
    /// Records a kill switch flip and the switch's new state, in one transaction.
    func recordKill(_ flip: KillFlip) async throws
    /// The kill switches that are on.
    func activeKills() async throws -> [KillScope]
    /// The newest kill switch flips, newest first.
    func killFlips(limit: Int) async throws -> [KillFlip]
    /// Records a new pending approval.
    func insertApproval(_ approval: ApprovalRecord) async throws
    /// Marks a pending approval resolved; false when it was not pending.
    func resolveApproval(
        id: String, status: ApprovalRecord.Status, resolution: String, atMS: Int64, byPID: Int32?, byExe: String?
    ) async throws -> Bool
    /// Approvals, newest first, optionally only those with one status.
    func approvals(status: ApprovalRecord.Status?, limit: Int) async throws -> [ApprovalRecord]
    /// Marks every pending approval expired (at start-up: nothing waits on them any more).
    func expirePendingApprovals(resolution: String, atMS: Int64) async throws -> Int
    /// A cheap read that proves the store answers.
    func ping() async throws
}

/// One turn of a kill switch, and who turned it.
public struct KillFlip: Sendable, Hashable {
    public var timeMS: Int64
    public var scope: KillScope
    public var on: Bool
    public var peerPID: Int32?
    public var peerUID: UInt32?
    public var peerExe: String?

    public init(timeMS: Int64, scope: KillScope, on: Bool, peerPID: Int32?, peerUID: UInt32?, peerExe: String?) {
        self.timeMS = timeMS
        self.scope = scope
        self.on = on
        self.peerPID = peerPID
        self.peerUID = peerUID
        self.peerExe = peerExe
    }
}

/// A call held for a person's decision by an `approve` cap, and how it ended.
public struct ApprovalRecord: Sendable, Hashable {
    public enum Status: String, Sendable, CaseIterable {
        case pending, approved, denied, expired
    }

    public var id: String
    public var createdMS: Int64
    public var provider: String
    public var model: String
    public var agent: String?
    public var app: String
    public var session: String?
    public var peerPID: Int32?
    public var estimatedNanoUSD: Int64
    public var cap: String
    public var capKey: String
    public var reason: String
    public var status: Status
    public var resolvedMS: Int64?
    public var resolution: String?
    public var resolvedByPID: Int32?
    public var resolvedByExe: String?

    public init(
        id: String, createdMS: Int64, provider: String, model: String, agent: String?, app: String, session: String?,
        peerPID: Int32?, estimatedNanoUSD: Int64, cap: String, capKey: String, reason: String,
        status: Status = .pending
    ) {
        self.id = id
        self.createdMS = createdMS
        self.provider = provider
        self.model = model
        self.agent = agent
        self.app = app
        self.session = session
        self.peerPID = peerPID
        self.estimatedNanoUSD = estimatedNanoUSD
        self.cap = cap
        self.capKey = capKey
        self.reason = reason
        self.status = status
    }
}
