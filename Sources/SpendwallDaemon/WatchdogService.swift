import ServiceLifecycle

/// Pings systemd's watchdog at half its interval while the daemon runs (only when
/// `WatchdogSec=` is set on the unit).
struct WatchdogService: Service {
    let intervalMicroseconds: UInt64

    func run() async throws {
        let half = Duration.microseconds(Int64(intervalMicroseconds / 2))
        while !Task.isShuttingDownGracefully {
            Systemd.notify("WATCHDOG=1")
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: half) }
        }
    }
}
