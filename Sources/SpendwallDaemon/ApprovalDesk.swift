import Synchronization

/// Where checks held by an `approve` cap wait for a person's decision.
///
/// The desk is the one place an approval is decided: whichever comes first of a person's
/// answer, the timeout and the daemon stopping wins, and the others find it already decided.
final class ApprovalDesk: Sendable {
    enum Outcome: Sendable, Equatable {
        case approved(String)
        case denied(String)
        case expired(String)
    }

    private enum Slot {
        case open
        case waiting(CheckedContinuation<Outcome, Never>)
        case decided(Outcome)
    }

    private struct State {
        var slots: [String: Slot] = [:]
        var closedReason: String?
    }

    private let state = Mutex(State())

    /// Opens an approval for `id`; false when the desk is closed (the daemon is stopping).
    func open(_ id: String) -> Bool {
        state.withLock { state in
            guard state.closedReason == nil else { return false }
            state.slots[id] = .open
            return true
        }
    }

    /// Decides an open approval; false when it was already decided or is unknown.
    @discardableResult
    func decide(_ id: String, _ outcome: Outcome) -> Bool {
        let (decided, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Outcome, Never>?) in
            switch state.slots[id] {
            case .open:
                state.slots[id] = .decided(outcome)
                return (true, nil)
            case .waiting(let continuation):
                state.slots[id] = nil
                return (true, continuation)
            case .decided, nil:
                return (false, nil)
            }
        }
        waiter?.resume(returning: outcome)
        return decided
    }

    /// Waits for the decision on `id`; after `timeout` it is expired.
    func wait(for id: String, timeout: Duration) async -> Outcome {
        async let _: Void = {
            do {
                try await Task.sleep(for: timeout)
                decide(id, .expired("no decision within \(timeout.compact)"))
            } catch {
                // Decided before the timeout.
            }
        }()
        return await withCheckedContinuation { continuation in
            let decided: Outcome? = state.withLock { state in
                switch state.slots[id] {
                case .open:
                    state.slots[id] = .waiting(continuation)
                    return nil
                case .decided(let outcome):
                    state.slots[id] = nil
                    return outcome
                case .waiting, nil:
                    return .expired("unknown approval")
                }
            }
            if let decided { continuation.resume(returning: decided) }
        }
    }

    /// Ids of approvals not yet decided.
    var pending: [String] {
        state.withLock { state in
            state.slots.compactMap { id, slot in if case .decided = slot { nil } else { id } }
        }
    }

    /// Expires every open approval and refuses new ones (at shutdown).
    func close(reason: String) {
        let open = state.withLock { state in
            state.closedReason = reason
            return Array(state.slots.keys)
        }
        for id in open { decide(id, .expired(reason)) }
    }
}

extension Duration {
    /// `5m`, `30s`, `1h`.
    var compact: String {
        let seconds = components.seconds
        if seconds % 3600 == 0 && seconds > 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 && seconds > 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }
}
