import ServiceLifecycle

/// Ends the sessions whose `spendwall run` went away without ending them (see
/// ``SocketAPI/endLostSessions()``), every two seconds.
struct SessionWatcher: Service {
    let api: SocketAPI

    func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            await api.endLostSessions()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(2)) }
        }
    }
}
