import ServiceLifecycle

/// Ends the sessions whose `spendwall run` went away without ending them (see
/// ``SocketAPI/endLostSessions()``), every two seconds.
struct SessionWatcher: Service, CustomStringConvertible {
    let api: SocketAPI

    /// What service logs name it by (never the API's fields: they hold keys).
    var description: String { "SessionWatcher" }

    func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            await api.endLostSessions()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(2)) }
        }
    }
}
