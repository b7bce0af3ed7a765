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
    private let store: any IntegrationStore
    private let logger: Logger
    private let clock: any WallClock
    private let random: @Sendable () -> Double
    private let http: HTTPClient
    /// What alerts.toml says now: replaced whole by ``reconfigure(_:)``.
    private let routes: Mutex<Routes>
    /// Transports whose worker is to start (at init and on each reconfiguration).
    private let workers = AsyncStream<Worker>.makeStream()
    private let overflow = AsyncStream<DeadLetter>.makeStream()
    private let limiter: Mutex<AlertRateLimiter>
    private let stopping = Atomic<Bool>(false)
    private let counters = Mutex(Counters())

    struct Job: Sendable {
        var alert: Alert
    }

    private struct Routes {
        var configuration: AlertsConfiguration
        var policy: BackoffPolicy
        var transports: [String: any AlertTransport] = [:]
        var queues: [String: AsyncStream<Job>.Continuation] = [:]
    }

    private struct Worker: Sendable {
        var transport: any AlertTransport
        var jobs: AsyncStream<Job>
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
        self.store = store
        self.logger = logger
        self.clock = clock
        self.random = random
        var httpConfiguration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        httpConfiguration.connectionPool.idleTimeout = .seconds(30)
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        self.routes = Mutex(Routes(configuration: AlertsConfiguration(), policy: Self.policy(configuration)))
        self.limiter = Mutex(AlertRateLimiter(windowMS: configuration.dispatch.rateLimitWindowMS))
        reconfigure(configuration)
    }

    private static func policy(_ configuration: AlertsConfiguration) -> BackoffPolicy {
        let d = configuration.dispatch
        return BackoffPolicy(
            baseDelayMS: d.baseDelayMS, maxDelayMS: d.maxDelayMS, jitter: d.jitter, maxAttempts: d.maxAttempts)
    }

    /// Takes a new alerts.toml (a live reload). A transport whose settings did not change keeps
    /// its queue; a changed one gets a new queue and worker while the old worker finishes what
    /// it holds; a removed one stops taking alerts and finishes what it holds.
    public func reconfigure(_ configuration: AlertsConfiguration) {
        let d = configuration.dispatch
        let started: [Worker] = routes.withLock { routes in
            var started: [Worker] = []
            var transports: [String: any AlertTransport] = [:]
            var queues: [String: AsyncStream<Job>.Continuation] = [:]
            for t in configuration.transports {
                if let old = routes.transports[t.name], old.configuration == t,
                    routes.configuration.dispatch.panelURL == d.panelURL, let queue = routes.queues[t.name]
                {
                    transports[t.name] = old
                    queues[t.name] = queue
                    continue
                }
                let transport: any AlertTransport
                switch t.kind {
                case .slack, .webhook:
                    transport = HTTPAlertTransport(configuration: t, client: http, panelURL: d.panelURL, clock: clock)
                case .email:
                    transport = EmailAlertTransport(configuration: t, panelURL: d.panelURL, clock: clock)
                }
                let (stream, continuation) = AsyncStream<Job>.makeStream(
                    bufferingPolicy: .bufferingNewest(d.queueLimit))
                transports[t.name] = transport
                queues[t.name] = continuation
                started.append(Worker(transport: transport, jobs: stream))
            }
            // Queues no longer used end; their workers deliver what they hold, then stop.
            for (name, queue) in routes.queues
            where queues[name] == nil
                || started.contains(where: {
                    $0.transport.configuration.name == name
                })
            {
                queue.finish()
            }
            routes = Routes(
                configuration: configuration, policy: Self.policy(configuration), transports: transports,
                queues: queues)
            return started
        }
        limiter.withLock { $0.windowMS = d.rateLimitWindowMS }
        for worker in started { workers.continuation.yield(worker) }
    }

    /// The transports' names and kinds.
    public var transportNames: [(name: String, kind: String)] {
        routes.withLock { $0.configuration.transports.map { ($0.name, $0.kind.rawValue) } }
    }

    /// Takes an event from the event bus. Never waits: routing, the rate limit and queueing
    /// happen on the caller's thread; delivery on the transports' workers.
    public func submit(kind: String, event: [UInt8]) {
        let (routed, queues) = routes.withLock { ($0.configuration.transports(for: kind), $0.queues) }
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
            if case .dropped(let old) = queue.yield(Job(alert: alert)) {
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
                group.addTask {
                    for await letter in self.overflow.stream {
                        await Self.record(letter, store: self.store, logger: self.logger)
                    }
                }
                for await worker in self.workers.stream {
                    group.addTask { await self.work(worker.transport, worker.jobs) }
                }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.routes.withLock { routes in
                for queue in routes.queues.values { queue.finish() }
            }
            self.workers.continuation.finish()
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
            let policy = routes.withLock { $0.policy }
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
        let (found, configuration) = routes.withLock { ($0.transports[name], $0.configuration) }
        guard let transport = found else {
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
