import SpendwallCore
import Synchronization

/// The `spendwall run` sessions that are running: what the proxy adds to their calls (the
/// session's agent and tags) and whom a kill switch stops.
final class SessionRegistry: Sendable {
    struct Entry: Sendable, Hashable {
        var id: String
        var agent: String?
        var tags: [String: String]
    }

    private let entries = Mutex<[String: Entry]>([:])

    func add(_ entry: Entry) { entries.withLock { $0[entry.id] = entry } }

    func remove(_ id: String) { _ = entries.withLock { $0.removeValue(forKey: id) } }

    func entry(_ id: String) -> Entry? { entries.withLock { $0[id] } }

    /// The running sessions a kill switch stops: the global switch stops them all, an agent's
    /// switch the sessions run as that agent, a session's switch that session.
    func covered(by scope: KillScope) -> [String] {
        entries.withLock { entries in
            entries.values.filter { entry in
                switch scope {
                case .global: true
                case .agent(let agent): entry.agent == agent
                case .session(let id): entry.id == id
                case .app: false
                }
            }.map(\.id).sorted()
        }
    }

    /// A call with the session's agent and tags filled in where the call did not say.
    func attributed(_ call: CallAttributes) -> CallAttributes {
        guard let id = call.session, let entry = entry(id) else { return call }
        var call = call
        if call.agent == nil { call.agent = entry.agent }
        call.tags.merge(entry.tags) { own, _ in own }
        return call
    }
}
