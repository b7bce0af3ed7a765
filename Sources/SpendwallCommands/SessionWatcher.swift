import Foundation
import SpendwallClient
import SpendwallCore
import SpendwallRun
import Synchronization

/// Follows the daemon's events for one session: a `SessionStop` (budget spent, kill switch)
/// stops the program; the session cap's warning (80% by default) becomes a notice.
final class SessionWatcher: Sendable {
    let id: String
    let budgetNanoUSD: Int64?
    private let state = Mutex(State())
    private let opened = Mutex<CheckedContinuation<Void, any Error>?>(nil)
    private let isOpen = Atomic<Bool>(false)

    private struct State {
        var supervisor: SessionSupervisor?
        var pendingStop: StopReason?
        var pendingNotices: [String] = []
        /// A stop was passed on: later ones (one per refused call) add nothing.
        var stopping = false
    }

    init(id: String, budgetNanoUSD: Int64?) {
        self.id = id
        self.budgetNanoUSD = budgetNanoUSD
    }

    /// Hands over the supervisor; a stop that came before it is applied now.
    func attach(_ supervisor: SessionSupervisor) {
        let (stop, notices) = state.withLock { state in
            state.supervisor = supervisor
            defer { state.pendingNotices = [] }
            return (state.pendingStop, state.pendingNotices)
        }
        if let stop { supervisor.requestStop(stop) }
        for notice in notices { supervisor.notify(notice) }
    }

    /// Waits until the event stream is open (so nothing the program spends is missed).
    func waitUntilOpen() async throws {
        try await withCheckedThrowingContinuation { continuation in
            if isOpen.load(ordering: .acquiring) {
                continuation.resume()
            } else {
                opened.withLock { $0 = continuation }
                if isOpen.load(ordering: .acquiring), let c = opened.withLock({ $0.take() }) { c.resume() }
            }
        }
    }

    private func markOpen(_ error: (any Error)? = nil) {
        isOpen.store(true, ordering: .releasing)
        guard let continuation = opened.withLock({ $0.take() }) else { return }
        if let error { continuation.resume(throwing: error) } else { continuation.resume() }
    }

    /// Follows the events until cancelled. A stream that ends (the daemon restarted) is opened
    /// again; the session's cap still refuses calls meanwhile, so only the stop would be late.
    func watch(_ client: DaemonClient) async throws {
        while !Task.isCancelled {
            do {
                try await client.events(kinds: ["SessionStop", "CapAlert"], onOpen: { self.markOpen() }) { event in
                    self.handle(event)
                    return !Task.isCancelled
                }
            } catch {
                guard isOpen.load(ordering: .acquiring) else {
                    markOpen(error)
                    throw error
                }
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    private func handle(_ event: DaemonClient.ServerEvent) {
        guard let envelope = try? JSONSerialization.jsonObject(with: event.json) as? [String: Any],
            let data = envelope["data"] as? [String: Any]
        else { return }
        switch event.kind {
        case "SessionStop":
            guard data["session"] as? String == id else { return }
            let reason: StopReason = data["reason"] as? String == "killed" ? .killed : .budgetExceeded
            deliver(stop: reason, notice: "stopping session \(id) (\(reason.rawValue))")
        case "CapAlert":
            guard let cap = data["cap"] as? [String: Any], cap["name"] as? String == Cap.sessionCapName(id) else {
                return
            }
            let used = (cap["used"] as? Double).map { Int(($0 * 100).rounded(.down)) } ?? 80
            let spent = (cap["spent_nanousd"] as? Int64).map(Money.format)
            let limit = (cap["limit_nanousd"] as? Int64).map(Money.format)
            var text = "session \(id) has used \(used)% of its budget"
            if let spent, let limit { text += " (\(spent) of \(limit))" }
            deliver(stop: nil, notice: text)
        default: return
        }
    }

    private func deliver(stop: StopReason?, notice: String) {
        let supervisor = state.withLock { state -> SessionSupervisor? in
            if stop != nil {
                guard !state.stopping else { return nil }
                state.stopping = true
            }
            guard let supervisor = state.supervisor else {
                if state.pendingStop == nil { state.pendingStop = stop }
                state.pendingNotices.append(notice)
                return nil
            }
            return supervisor
        }
        guard let supervisor else { return }
        supervisor.notify(notice)
        if let stop { supervisor.requestStop(stop) }
    }
}
