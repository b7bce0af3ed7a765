import Foundation
import Logging
import ServiceLifecycle
import SpendwallCore

/// Writes ledger rows in batches (group commit): every event waiting when a transaction starts
/// goes into it, and each caller is answered once its row is committed. Under load one
/// transaction carries many rows; alone, a row is written at once.
///
/// The writing happens on one thread of its own that blocks in SQLite, so a report costs no
/// hop through the concurrency pool or a dispatch queue: the event loop that read it queues the
/// row and is called back from this thread when the row is committed.
///
/// On graceful shutdown it stops taking new rows and commits everything already queued, so
/// nothing acknowledged or accepted is lost on a clean stop.
public final class LedgerWriter: Service, @unchecked Sendable {
    public let store: any LedgerStore
    private let logger: Logger
    private let maxBatch: Int
    // Guards everything below; the writer thread waits on it for rows.
    private let condition = NSCondition()
    private var pending: [Pending] = []
    private var closed = false
    private var finished = false
    private var finishedWaiters: [CheckedContinuation<Void, Never>] = []
    private var lastWrite: Int64?
    private var failure: String?
    /// Rows kept for a retry while the ledger cannot write (see ``append(_:keepOnFailure:)``);
    /// past this many, more are dropped, loudly.
    private let maxRetained = 100_000

    private struct Pending {
        var event: SpendEvent
        var completion: (@Sendable (Result<AppendResult, SpendwallError>) -> Void)?
        /// Write it later if this commit fails (the caller is still told it failed).
        var keep: Bool
    }

    /// Called on the writer's thread after each committed batch, with each row's result and
    /// how long the commit took (metrics).
    public typealias CommitObserver =
        @Sendable (_ events: [SpendEvent], _ results: [AppendResult], _ took: Swift.Duration)
        -> Void
    private let onCommit: CommitObserver?

    public init(store: any LedgerStore, logger: Logger, maxBatch: Int = 1000, onCommit: CommitObserver? = nil) {
        self.store = store
        self.logger = logger
        self.maxBatch = maxBatch
        self.onCommit = onCommit
    }

    /// Appends an event and returns once it is committed.
    ///
    /// With `keepOnFailure`, a row whose commit fails is still written once the ledger works
    /// again: for rows whose spend the policy engine has already counted (a settled report),
    /// which would otherwise be in the windows and not in the ledger. A caller that retries
    /// then finds it recorded (idempotent by request id).
    public func append(_ event: SpendEvent, keepOnFailure: Bool = false) async throws -> AppendResult {
        try await withCheckedThrowingContinuation { continuation in
            append(event, keepOnFailure: keepOnFailure) { continuation.resume(with: $0) }
        }
    }

    /// Appends an event and calls `completion` once it is committed (on the writer's thread),
    /// or with the reason it cannot be.
    public func append(
        _ event: SpendEvent, keepOnFailure: Bool = false,
        completion: @escaping @Sendable (Result<AppendResult, SpendwallError>) -> Void
    ) {
        if let error = enqueue(Pending(event: event, completion: completion, keep: keepOnFailure)) {
            completion(.failure(error))
        }
    }

    /// Queues an event without waiting for its commit (blocked, killed and unreported rows);
    /// kept and retried while the ledger cannot write.
    public func submit(_ event: SpendEvent) {
        if enqueue(Pending(event: event, completion: nil, keep: true)) != nil {
            logger.error("ledger closed; dropped \(event.outcome.rawValue) row \(event.requestID)")
        }
    }

    /// Rows queued and not yet committed.
    public var queued: Int { locked { pending.count } }

    /// When the last batch was committed (Unix ms), if any.
    public var lastWriteMS: Int64? { locked { lastWrite } }

    /// Why the last batch failed, while no batch has succeeded since (nil when writing works).
    public var failing: String? { locked { failure } }

    private func enqueue(_ item: Pending) -> SpendwallError? {
        condition.lock()
        defer { condition.unlock() }
        if closed { return SpendwallError(.unavailable, "the ledger is shutting down") }
        pending.append(item)
        if pending.count == 1 { condition.signal() }
        return nil
    }

    public func run() async throws {
        let thread = Thread { [self] in
            while let batch = nextBatch() { write(batch) }
            let waiters = locked {
                finished = true
                return finishedWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
        thread.name = "spendwall-ledger-writer"
        thread.start()
        await withGracefulShutdownHandler {
            await untilFinished()
        } onGracefulShutdown: {
            self.close()
        }
        logger.debug("ledger writer drained")
    }

    /// Stops taking rows; the thread commits what is queued and ends.
    private func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
    }

    private func untilFinished() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = locked {
                if finished { return true }
                finishedWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Waits for queued events; nil only once closed and drained.
    private func nextBatch() -> [Pending]? {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty {
            if closed { return nil }
            condition.wait()
        }
        if pending.count <= maxBatch {
            var batch: [Pending] = []
            swap(&batch, &pending)
            return batch
        }
        let batch = Array(pending.prefix(maxBatch))
        pending.removeFirst(maxBatch)
        return batch
    }

    private func write(_ batch: [Pending]) {
        do {
            let events = batch.map(\.event)
            let start = ContinuousClock.now
            let results = try store.append(events)
            let took = ContinuousClock.now - start
            let now = SystemWallClock().nowMS()
            let recovered = locked {
                lastWrite = now
                defer { failure = nil }
                return failure != nil
            }
            if recovered { logger.notice("the ledger is writing again") }
            for (item, result) in zip(batch, results) { item.completion?(.success(result)) }
            onCommit?(events, results, took)
        } catch {
            logger.error("ledger write of \(batch.count) rows failed: \(error)")
            let reason = "\(error)"
            let error = SpendwallError(.unavailable, "the ledger could not write: \(reason)")
            // A caller that waits is told (an SDK spools its report); rows already counted by
            // the policy engine are kept and written once the ledger works again.
            for item in batch { item.completion?(.failure(error)) }
            let retained = batch.filter(\.keep).map { Pending(event: $0.event, completion: nil, keep: true) }
            let dropped = locked { () -> Int in
                failure = reason
                guard !closed else { return retained.count }
                let room = max(0, maxRetained - pending.count)
                pending.insert(contentsOf: retained.suffix(room), at: 0)
                return retained.count - min(room, retained.count)
            }
            if dropped > 0 { logger.critical("dropped \(dropped) ledger rows that could not be written: \(reason)") }
            backOff()
        }
    }

    /// Waits a little before the next try while the ledger fails (wakes early on close).
    private func backOff() {
        condition.lock()
        defer { condition.unlock() }
        if !closed { _ = condition.wait(until: Date(timeIntervalSinceNow: 0.5)) }
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }
}
