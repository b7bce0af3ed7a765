import SpendwallCore
import Synchronization

/// Proxied calls on their way, so that turning a kill switch on cuts the ones in its scope at
/// once (the SDKs do the same for their own calls from the event stream).
final class InFlightCalls: Sendable {
    private struct Entry: Sendable {
        var call: CallAttributes
        var stop: @Sendable () -> Void
    }

    private let state = Mutex<(next: UInt64, entries: [UInt64: Entry])>((0, [:]))

    /// Registers a call; `stop` runs (once, from any thread) if a kill covers it.
    func register(_ call: CallAttributes, stop: @escaping @Sendable () -> Void) -> UInt64 {
        state.withLock { state in
            state.next += 1
            state.entries[state.next] = Entry(call: call, stop: stop)
            return state.next
        }
    }

    func remove(_ token: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: token) }
    }

    /// Stops every call the scope covers; returns how many.
    @discardableResult
    func kill(_ scope: KillScope) -> Int {
        let stopped = state.withLock { state in
            let covered = state.entries.filter { scope.covers($0.value.call) }
            for token in covered.keys { state.entries.removeValue(forKey: token) }
            return covered.values.map(\.stop)
        }
        for stop in stopped { stop() }
        return stopped.count
    }

    var count: Int { state.withLock { $0.entries.count } }
}
