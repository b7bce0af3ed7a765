import SpendwallCore

/// The ledger's tables for alerts and Stripe: dead letters, raw Stripe events and
/// reconciliations. Kept apart from ``LedgerStore`` so the spend path does not grow.
public protocol IntegrationStore: Sendable {
    /// Records an alert that will not be delivered; returns its id.
    func insertDeadLetter(_ letter: DeadLetter) async throws -> Int64
    /// Dead letters, newest first (status nil: all).
    func deadLetters(status: DeadLetter.Status?, limit: Int) async throws -> [DeadLetter]
    func deadLetter(id: Int64) async throws -> DeadLetter?
    /// Marks a dead letter delivered by a retry.
    func markRetried(id: Int64, atMS: Int64) async throws
    /// Stores a Stripe event; false when its id was stored before (a replay).
    func insertStripeEvent(_ event: StoredStripeEvent) async throws -> Bool
    /// Replaces the billed figure of each (period, provider, source, reference).
    func upsertReconciliations(_ rows: [ReconciliationRecord]) async throws
    /// Reconciliation rows, optionally of one period (`2026-11`).
    func reconciliations(period: String?) async throws -> [ReconciliationRecord]
    /// The ledger's spend for a provider in `[fromMS, toMS)`.
    func providerSpend(provider: String, fromMS: Int64, toMS: Int64) async throws -> Int64
}

/// An alert that was not delivered.
public struct DeadLetter: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        case dead, retried
    }

    public var id: Int64
    public var createdMS: Int64
    public var transport: String
    public var kind: String
    /// The event's JSON (`{"id", "kind", "time_ms", "data"}`).
    public var event: String
    public var attempts: Int
    public var lastError: String
    public var status: Status
    public var retriedMS: Int64?

    public init(
        id: Int64 = 0, createdMS: Int64, transport: String, kind: String, event: String, attempts: Int,
        lastError: String, status: Status = .dead, retriedMS: Int64? = nil
    ) {
        self.id = id
        self.createdMS = createdMS
        self.transport = transport
        self.kind = kind
        self.event = event
        self.attempts = attempts
        self.lastError = lastError
        self.status = status
        self.retriedMS = retriedMS
    }
}

/// A Stripe webhook event as received.
public struct StoredStripeEvent: Sendable, Hashable {
    public var id: String
    public var type: String
    public var created: Int64?
    public var livemode: Bool?
    public var receivedMS: Int64
    public var payload: String

    public init(id: String, type: String, created: Int64?, livemode: Bool?, receivedMS: Int64, payload: String) {
        self.id = id
        self.type = type
        self.created = created
        self.livemode = livemode
        self.receivedMS = receivedMS
        self.payload = payload
    }
}

/// What one invoice or export billed for a provider and month, and the ledger beside it.
public struct ReconciliationRecord: Sendable, Hashable {
    public var period: String
    public var provider: String
    public var source: String
    public var reference: String
    public var billedNanoUSD: Int64
    public var ledgerNanoUSD: Int64
    public var driftNanoUSD: Int64
    public var updatedMS: Int64

    public init(
        period: String, provider: String, source: String, reference: String, billedNanoUSD: Int64,
        ledgerNanoUSD: Int64, driftNanoUSD: Int64, updatedMS: Int64
    ) {
        self.period = period
        self.provider = provider
        self.source = source
        self.reference = reference
        self.billedNanoUSD = billedNanoUSD
        self.ledgerNanoUSD = ledgerNanoUSD
        self.driftNanoUSD = driftNanoUSD
        self.updatedMS = updatedMS
    }
}
