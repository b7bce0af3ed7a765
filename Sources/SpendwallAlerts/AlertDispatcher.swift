import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import SpendwallConfig
import SpendwallCore
import SpendwallLedger
import Synchronization

/// Sends events to the transports alerts.toml routes them to.
///
/// Each transport has its own queue and worker, so a slow or failing Slack never holds up
/// email. A failed delivery is retried after a capped exponential backoff with jitter
/// (``BackoffPolicy``) when the failure can pass (408, 429, 5xx, timeouts, refused connections);
/// a permanent failure (400, 401, 403, 404, a refused SMTP login) or the last attempt puts the
/// alert in the ledger's dead-letter table, from where `spendwall alerts retry ID` sends it again.
/// A flapping cap is held to one alert per cap, per window, per kind (``AlertRateLimiter``).
/// At shutdown, alerts still queued or waiting for a retry are dead-lettered, not lost.
public final class AlertDispatcher: Service, Sendable {
    private let configuration: AlertsConfiguration
    private let policy: BackoffPolicy
    private let store: any IntegrationStore
    private let logger: Logger
    private let clock: any WallClock
    private let random: @Sendable () -> Double
    private let http: HTTPClient
    private let transports: [String: any AlertTransport]
    private let queues: [String: (stream: AsyncStream<Job>, continuation: AsyncStream<Job>.Continuation)]
    private let overflow = AsyncStream<DeadLetter>.makeStream()
    private let limiter: Mutex<AlertRateLimiter>
    private let stopping = Atomic<Bool>(false)
    private let counters = Mutex(Counters())

    struct Job: Sendable {
        var alert: Alert
    }

    /// Deliveries so far, for `alerts ls` and tests.
    public struct Counters: Sendable, Hashable {
        public var delivered = 0
        public var retried = 0
        public var deadLettered = 0
        public var suppressed = 0
    }

    public var counts: Counters { counters.withLock { $0 } }

    public init(
        configuration: AlertsConfiguration, store: any IntegrationStore, logger: Logger,
        clock: any WallClock = SystemWallClock(),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.configuration = configuration
        let d = configuration.dispatch
        self.policy = BackoffPolicy(
            baseDelayMS: d.baseDelayMS, maxDelayMS: d.maxDelayMS, jitter: d.jitter, maxAttempts: d.maxAttempts)
        self.store = store
        self.logger = logger
        self.clock = clock
        self.random = random
        var httpConfiguration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        httpConfiguration.connectionPool.idleTimeout = .seconds(30)
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        var transports: [String: any AlertTransport] = [:]
        var queues: [String: (AsyncStream<Job>, AsyncStream<Job>.Continuation)] = [:]
        for t in configuration.transports {
            switch t.kind {
            case .slack, .webhook:
                transports[t.name] = HTTPAlertTransport(
                    configuration: t, client: http, panelURL: d.panelURL, clock: clock)
            case .email:
                transports[t.name] = EmailAlertTransport(configuration: t, panelURL: d.panelURL, clock: clock)
            }
            queues[t.name] = AsyncStream<Job>.makeStream(bufferingPolicy: .bufferingNewest(d.queueLimit))
        }
        self.transports = transports
        self.queues = queues.mapValues { (stream: $0.0, continuation: $0.1) }
        self.limiter = Mutex(AlertRateLimiter(windowMS: d.rateLimitWindowMS))
    }

    /// The transports' names and kinds.
    public var transportNames: [(name: String, kind: String)] {
        configuration.transports.map { ($0.name, $0.kind.rawValue) }
    }

    /// Takes an event from the event bus. Never waits: routing, the rate limit and queueing
    /// happen on the caller's thread; delivery on the transports' workers.
    public func submit(kind: String, event: [UInt8]) {
        let routed = configuration.transports(for: kind)
        guard !routed.isEmpty, !stopping.load(ordering: .relaxed) else { return }
        var alert = Alert(kind: kind, event: String(decoding: event, as: UTF8.self))
        if let key = alert.rateLimitKey {
            switch limiter.withLock({ $0.admit(key: key, nowMS: clock.nowMS()) }) {
            case .suppress:
                counters.withLock { $0.suppressed += 1 }
                logger.debug("alert \(kind) held back by the rate limit")
                return
            case .send(let held): alert.suppressed = held
            }
        }
        for transport in routed {
            guard let queue = queues[transport.name] else { continue }
            if case .dropped(let old) = queue.continuation.yield(Job(alert: alert)) {
                logger.warning("alert queue of \(transport) is full; the oldest alert goes to the dead letters")
                counters.withLock { $0.deadLettered += 1 }
                let letter = DeadLetter(
                    createdMS: clock.nowMS(), transport: transport.name, kind: old.alert.kind, event: old.alert.event,
                    attempts: 0, lastError: "the queue was full")
                // Recorded by run()'s overflow worker; the caller cannot wait for the ledger.
                overflow.continuation.yield(letter)
            }
        }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for (name, queue) in queues {
                    guard let transport = transports[name] else { continue }
                    group.addTask { await self.work(transport, queue.stream) }
                }
                group.addTask {
                    for await letter in self.overflow.stream {
                        await Self.record(letter, store: self.store, logger: self.logger)
                    }
                }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            for queue in self.queues.values { queue.continuation.finish() }
            self.overflow.continuation.finish()
        }
        try? await http.shutdown()
    }

    private func work(_ transport: any AlertTransport, _ stream: AsyncStream<Job>) async {
        for await job in stream {
            await process(job.alert, transport)
        }
    }

    /// Delivers with retries, or dead-letters.
    private func process(_ alert: Alert, _ transport: any AlertTransport) async {
        let name = transport.configuration.name
        var attempt = 0
        while true {
            attempt += 1
            if stopping.load(ordering: .relaxed) {
                await deadLetter(alert, name, attempts: attempt - 1, reason: "the daemon stopped before delivery")
                return
            }
            guard let failure = await transport.deliver(alert) else {
                counters.withLock { $0.delivered += 1 }
                logger.info("alert \(alert.kind) delivered to \(transport.configuration)")
                return
            }
            switch policy.next(after: attempt, failure: failure, random: random()) {
            case .deadLetter(let reason):
                await deadLetter(alert, name, attempts: attempt, reason: reason)
                return
            case .retry(let delay):
                counters.withLock { $0.retried += 1 }
                logger.notice(
                    "alert \(alert.kind) to \(transport.configuration) failed (\(failure.reason)); retry \(attempt) in \(delay) ms"
                )
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(delay)) }
                } catch {
                    await deadLetter(
                        alert, name, attempts: attempt, reason: "the daemon stopped before a retry: \(failure.reason)")
                    return
                }
            }
        }
    }

    private func deadLetter(_ alert: Alert, _ transport: String, attempts: Int, reason: String) async {
        counters.withLock { $0.deadLettered += 1 }
        logger.warning(
            "alert \(alert.kind) to \(transport) is a dead letter: \(reason) (see `spendwall alerts ls`, retry with `spendwall alerts retry ID`)"
        )
        await Self.record(
            DeadLetter(
                createdMS: clock.nowMS(), transport: transport, kind: alert.kind, event: alert.event,
                attempts: attempts,
                lastError: reason), store: store, logger: logger)
    }

    private static func record(_ letter: DeadLetter, store: any IntegrationStore, logger: Logger) async {
        do {
            _ = try await store.insertDeadLetter(letter)
        } catch {
            logger.error("cannot record a dead-letter alert for \(letter.transport): \(error)")
        }
    }

    /// One delivery now, no retries (`alerts test`, `alerts retry`). Throws when there is no
    /// such transport.
    public func deliverOnce(_ alert: Alert, transport name: String) async throws(SpendwallError) -> DeliveryFailure? {
        guard let transport = transports[name] else {
            let known = configuration.transports.map(\.name).sorted().joined(separator: ", ")
            throw SpendwallError(
                .notFound,
                "no transport is named \"\(name)\" in alerts.toml"
                    + (known.isEmpty ? " (there are none)" : " (known: \(known))"))
        }
        let failure = await transport.deliver(alert)
        if failure == nil { counters.withLock { $0.delivered += 1 } }
        return failure
    }
}
