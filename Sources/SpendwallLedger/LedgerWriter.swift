import Logging
import ServiceLifecycle
import SpendwallCore
import Synchronization

/// Writes ledger rows in batches (group commit): every event waiting when a transaction starts
/// goes into it, and each caller is answered once its row is committed. Under load one
/// transaction carries many rows; alone, a row is written at once.
///
/// On graceful shutdown it stops taking new rows and commits everything already queued, so
/// nothing acknowledged or accepted is lost on a clean stop.
public final class LedgerWriter: Service, Sendable {
    public let store: any LedgerStore
    private let logger: Logger
    private let maxBatch: Int
    private let state = Mutex(State())

    private struct Pending: Sendable {
        var event: SpendEvent
        var completion: (@Sendable (Result<AppendResult, SpendwallError>) -> Void)?
    }

    private struct State: Sendable {
        var pending: [Pending] = []
        var wakeUp: CheckedContinuation<Void, Never>?
        var closed = false
        var lastWriteMS: Int64?
    }

    public init(store: any LedgerStore, logger: Logger, maxBatch: Int = 1000) {
        self.store = store
        self.logger = logger
        self.maxBatch = maxBatch
    }

    /// Appends an event and returns once it is committed.
    public func append(_ event: SpendEvent) async throws -> AppendResult {
        try await withCheckedThrowingContinuation { continuation in
            append(event) { continuation.resume(with: $0) }
        }
    }

    /// Appends an event and calls `completion` once it is committed (on the writer's thread),
    /// or at once with the reason it cannot be.
    public func append(
        _ event: SpendEvent, completion: @escaping @Sendable (Result<AppendResult, SpendwallError>) -> Void
    ) {
        if let error = enqueue(Pending(event: event, completion: completion)) {
            completion(.failure(error))
        }
    }

    /// Queues an event without waiting for its commit (blocked and unreported rows).
    public func submit(_ event: SpendEvent) {
        if enqueue(Pending(event: event, completion: nil)) != nil {
            logger.error("ledger closed; dropped \(event.outcome.rawValue) row \(event.requestID)")
        }
    }

    /// Rows queued and not yet committed.
    public var queued: Int { state.withLock { $0.pending.count } }

    private func enqueue(_ item: Pending) -> SpendwallError? {
        let (accepted, wake) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            if state.closed { return (false, nil) }
            state.pending.append(item)
            defer { state.wakeUp = nil }
            return (true, state.wakeUp)
        }
        guard accepted else { return SpendwallError(.unavailable, "the ledger is shutting down") }
        wake?.resume()
        return nil
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while true {
                let batch = await nextBatch()
                if batch.isEmpty { break }
                await write(batch)
            }
            logger.debug("ledger writer drained")
        } onGracefulShutdown: {
            let wake = self.state.withLock { state in
                state.closed = true
                defer { state.wakeUp = nil }
                return state.wakeUp
            }
            wake?.resume()
        }
    }

    /// Waits for queued events; empty only once closed and drained.
    private func nextBatch() async -> [Pending] {
        while true {
            let taken: [Pending]? = state.withLock { state in
                if !state.pending.isEmpty {
                    let count = min(maxBatch, state.pending.count)
                    let batch = Array(state.pending.prefix(count))
                    state.pending.removeFirst(count)
                    return batch
                }
                return state.closed ? [] : nil
            }
            if let taken { return taken }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if !state.pending.isEmpty || state.closed { return true }
                    state.wakeUp = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    private func write(_ batch: [Pending]) async {
        do {
            let results = try await store.append(batch.map(\.event))
            for (item, result) in zip(batch, results) { item.completion?(.success(result)) }
            state.withLock { $0.lastWriteMS = SystemWallClock().nowMS() }
        } catch {
            logger.error("ledger write of \(batch.count) rows failed: \(error)")
            let failure = SpendwallError(.unavailable, "the ledger could not write: \(error)")
            for item in batch { item.completion?(.failure(failure)) }
        }
    }

    /// When the last batch was committed (Unix ms), if any.
    public var lastWriteMS: Int64? { state.withLock { $0.lastWriteMS } }
}
