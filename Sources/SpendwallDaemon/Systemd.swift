import CSystemd

#if canImport(Glibc)
    import Glibc
#endif

/// The daemon's side of systemd: readiness and stopping notifications, the watchdog, and
/// sockets passed in by socket activation. Every call is a no-op outside systemd.
public enum Systemd {
    /// Sends a state string (`READY=1`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=...`) to the
    /// NOTIFY_SOCKET, if there is one.
    public static func notify(_ state: String) {
        _ = sd_notify(0, state)
    }

    /// File descriptors passed by socket activation (starting at 3), if any.
    public static func listenFDs() -> [Int32] {
        let count = sd_listen_fds(1)
        guard count > 0 else { return [] }
        return (0..<count).map { 3 + $0 }
    }

    /// True when `fd` is a listening Unix stream socket.
    public static func isUnixStreamListener(_ fd: Int32) -> Bool {
        sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0
    }

    /// The watchdog interval in microseconds when systemd asked for pings.
    public static func watchdogInterval() -> UInt64? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return usec
    }
}
