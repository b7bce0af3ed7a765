import SpendwallCore

/// How `ls` and `GET /v1/spend` group the ledger.
public enum SpendGrouping: String, Sendable, CaseIterable {
    case app, agent, tag, model, session, day, provider, outcome
}

/// The time buckets of a spend series, in local time.
public enum SpendBucket: String, Sendable, CaseIterable {
    case hour, day
}

/// One bucket's spend for one key of a series.
public struct SpendPoint: Sendable, Hashable {
    /// The bucket's local start: `2026-12-03` (day) or `2026-12-03 14:00` (hour).
    public var bucket: String
    public var key: String
    public var calls: Int64
    public var costNanoUSD: NanoUSD

    public init(bucket: String, key: String, calls: Int64, costNanoUSD: NanoUSD) {
        self.bucket = bucket
        self.key = key
        self.calls = calls
        self.costNanoUSD = costNanoUSD
    }
}

/// Token and dollar totals for a group of ledger rows.
public struct SpendTotals: Sendable, Hashable {
    public var calls: Int64 = 0
    public var usage = Usage()
    public var costNanoUSD: NanoUSD = 0

    public init(calls: Int64 = 0, usage: Usage = Usage(), costNanoUSD: NanoUSD = 0) {
        self.calls = calls
        self.usage = usage
        self.costNanoUSD = costNanoUSD
    }
}

/// Ledger totals grouped one way since a point in time.
public struct SpendSummary: Sendable {
    public var total: SpendTotals
    public var rows: [(key: String, totals: SpendTotals)]

    public init(total: SpendTotals, rows: [(key: String, totals: SpendTotals)]) {
        self.total = total
        self.rows = rows
    }
}

/// Spend aggregated for rebuilding cap windows at start-up.
public struct WindowSpend: Sendable {
    public var attributes: CallAttributes
    public var costNanoUSD: NanoUSD
    public var tokens: Int64
    /// The end of the aggregation bucket (rounded up, so windows never expire spend early).
    public var timeMS: Int64
}
