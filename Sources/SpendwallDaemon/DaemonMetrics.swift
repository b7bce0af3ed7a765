import Prometheus
import SpendwallCore
import SpendwallLedger

/// The daemon's Prometheus metrics, served as text at `/metrics` on the loopback listener.
///
/// Spend and calls are counted when their rows are committed, so the counters agree with the
/// ledger (a replayed duplicate is not counted twice). Everything else is counted where it
/// happens. Gauges that describe state (reservations in flight, subscribers) are read when
/// scraped.
final class DaemonMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let checkDuration: DurationHistogram
    private let ledgerWriteDuration: DurationHistogram
    private let ledgerRows: Counter
    private let eventsDropped: Counter
    private let reservationsInFlight: Gauge
    private let eventSubscribers: Gauge
    /// One counter per decision, made once (a check should not look its counter up).
    private let decisions: [String: Counter]

    init() {
        checkDuration = registry.makeDurationHistogram(
            descriptor: Self.name(
                "check_duration", "seconds",
                "Time to answer a check: decoding and deciding (checks held for an approval excluded)"),
            buckets: [
                .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
                .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250),
            ])
        ledgerWriteDuration = registry.makeDurationHistogram(
            descriptor: Self.name(
                "ledger_write_duration", "seconds", "Time to commit one batch of ledger rows (group commit)"),
            buckets: [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
                .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100), .seconds(1),
            ])
        ledgerRows = registry.makeCounter(
            descriptor: Self.name(
                "ledger_rows", "total", "Ledger rows committed (duplicates of committed rows excluded)"))
        eventsDropped = registry.makeCounter(
            descriptor: Self.name(
                "events_dropped", "total", "Live events not delivered to a subscriber that fell too far behind"))
        reservationsInFlight = registry.makeGauge(
            descriptor: Self.name(
                "reservations_in_flight", "", "Reservations taken by checks and not yet reported"))
        eventSubscribers = registry.makeGauge(
            descriptor: Self.name("event_subscribers", "", "Connected /v1/events subscribers"))
        var decisions: [String: Counter] = [:]
        for decision in ["allow", "block", "killed", "approval_denied"] {
            decisions[decision] = registry.makeCounter(
                descriptor: Self.name("decisions", "total", "Check decisions by outcome"),
                labels: [("decision", decision)])
        }
        self.decisions = decisions
    }

    /// `spendwall_<metric>_<unit>` with its help text.
    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "spendwall", metricName: metric, unitName: unit, helpText: help)
    }

    /// A check's decision: allow, block, killed or approval_denied.
    func decided(_ decision: String) {
        decisions[decision]?.increment()
    }

    func checkTook(_ duration: Swift.Duration) { checkDuration.record(duration) }

    func eventDropped() { eventsDropped.increment() }

    /// Counts a committed batch of rows.
    @Sendable func committed(_ events: [SpendEvent], _ results: [AppendResult], took duration: Swift.Duration) {
        ledgerWriteDuration.record(duration)
        for (event, result) in zip(events, results) {
            let added: NanoUSD
            switch result {
            case .inserted: added = event.costNanoUSD
            // The unreported row was counted at its reserved cost; a counter cannot go down,
            // so a lower real cost leaves it as it was (the ledger has the exact figure).
            case .replacedUnreported(let previous): added = max(0, event.costNanoUSD - previous)
            case .duplicate: continue
            }
            let labels = [("app", event.app), ("agent", event.agent ?? ""), ("model", event.model)]
            if case .inserted = result {
                ledgerRows.increment()
                registry.makeCounter(
                    descriptor: Self.name(
                        "calls", "total", "Calls recorded in the ledger, by app, agent, model and outcome"),
                    labels: labels + [("outcome", event.outcome.rawValue)]
                ).increment()
            }
            if added > 0 {
                registry.makeCounter(
                    descriptor: Self.name(
                        "spend_nanousd", "total",
                        "Spend recorded in the ledger in nano-USD (1e-9 USD), by app, agent and model"),
                    labels: labels
                ).increment(by: added)
            }
        }
    }

    /// The exposition text, with the state gauges read now.
    func render(reservationsInFlight inFlight: Int, eventSubscribers subscribers: Int) -> [UInt8] {
        reservationsInFlight.set(to: Double(inFlight))
        eventSubscribers.set(to: Double(subscribers))
        var buffer: [UInt8] = []
        buffer.reserveCapacity(4096)
        registry.emit(into: &buffer)
        return buffer
    }
}
