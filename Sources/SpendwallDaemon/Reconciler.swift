import Foundation
import SpendwallConfig
import SpendwallCore
import SpendwallLedger
import SpendwallStripe

/// Matches what providers billed (Stripe invoice lines, imported cost exports) against the
/// ledger's spend for the same provider and month, stores the figures in `reconciliations`,
/// and publishes ReconciliationDrift when the difference passes `[stripe]`'s threshold.
struct Reconciler: Sendable {
    let store: any IntegrationStore
    let events: EventBus
    let live: LiveStripeSettings
    let clock: any WallClock

    var settings: StripeSettings { live.current ?? StripeSettings() }

    /// One provider's month from one source, billed beside seen.
    struct Group: Sendable, Encodable {
        var period: String
        var provider: String
        var source: String
        var references: Int
        var billed_nanousd: Int64?
        var ledger_nanousd: Int64
        var drift_nanousd: Int64?
        var drift_percent: Double?
        var drifted: Bool
    }

    /// Stores `lines` (replacing earlier figures of the same reference) and returns the
    /// affected groups, publishing ReconciliationDrift for those past the threshold.
    func ingest(_ lines: [CostLine]) async throws -> [Group] {
        let now = clock.nowMS()
        var ledger: [String: Int64] = [:]
        for line in lines {
            let key = "\(line.provider)|\(line.period)"
            if ledger[key] == nil {
                ledger[key] = try await store.providerSpend(
                    provider: line.provider, fromMS: line.period.startMS, toMS: line.period.endMS)
            }
        }
        try await store.upsertReconciliations(
            lines.map { line in
                let seen = ledger["\(line.provider)|\(line.period)"] ?? 0
                return ReconciliationRecord(
                    period: line.period.description, provider: line.provider, source: line.source,
                    reference: line.reference, billedNanoUSD: line.nanoUSD, ledgerNanoUSD: seen,
                    driftNanoUSD: Drift(billedNanoUSD: line.nanoUSD, ledgerNanoUSD: seen).nanoUSD, updatedMS: now)
            })
        var touched: [String] = []
        for line in lines where !touched.contains("\(line.period)|\(line.provider)|\(line.source)") {
            touched.append("\(line.period)|\(line.provider)|\(line.source)")
        }
        var groups: [Group] = []
        for period in Set(lines.map(\.period.description)).sorted() {
            for group in try await report(period: period)
            where touched.contains("\(group.period)|\(group.provider)|\(group.source)") {
                groups.append(group)
                if group.drifted {
                    events.publish("ReconciliationDrift", group, timeMS: now)
                }
            }
        }
        return groups
    }

    /// The side-by-side figures of a month: each provider and source that billed it, and the
    /// providers the ledger saw spend for without a bill (source `ledger`).
    func report(period: String) async throws -> [Group] {
        guard let month = BillingPeriod(period) else {
            throw SpendwallError(
                .badRequest, "period must be a month written YYYY-MM (like 2026-11), not \"\(period)\"")
        }
        let rows = try await store.reconciliations(period: period)
        var billed: [String: (Int64, Int)] = [:]
        var order: [String] = []
        for row in rows {
            let key = "\(row.provider)|\(row.source)"
            if billed[key] == nil { order.append(key) }
            let (sum, n) = billed[key] ?? (0, 0)
            let (total, overflow) = sum.addingReportingOverflow(row.billedNanoUSD)
            billed[key] = (overflow ? .max : total, n + 1)
        }
        var out: [Group] = []
        var seenProviders: Set<String> = []
        for key in order {
            let parts = key.split(separator: "|", maxSplits: 1).map(String.init)
            let (provider, source) = (parts[0], parts[1])
            seenProviders.insert(provider)
            let ledger = try await store.providerSpend(provider: provider, fromMS: month.startMS, toMS: month.endMS)
            let (amount, count) = billed[key]!
            let drift = Drift(billedNanoUSD: amount, ledgerNanoUSD: ledger)
            out.append(
                Group(
                    period: period, provider: provider, source: source, references: count, billed_nanousd: amount,
                    ledger_nanousd: ledger, drift_nanousd: drift.nanoUSD,
                    drift_percent: drift.fraction.map { ($0 * 10_000).rounded() / 100 },
                    drifted: drift.exceeds(
                        thresholdNanoUSD: settings.driftThresholdNanoUSD,
                        thresholdFraction: settings.driftThresholdFraction)))
        }
        for provider in Provider.allCases.map(\.rawValue) where !seenProviders.contains(provider) {
            let ledger = try await store.providerSpend(provider: provider, fromMS: month.startMS, toMS: month.endMS)
            guard ledger != 0 else { continue }
            out.append(
                Group(
                    period: period, provider: provider, source: "ledger", references: 0, billed_nanousd: nil,
                    ledger_nanousd: ledger, drift_nanousd: nil, drift_percent: nil, drifted: false))
        }
        return out
    }
}
