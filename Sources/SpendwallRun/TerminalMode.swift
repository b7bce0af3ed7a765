#if canImport(Glibc)
    import Glibc
#endif

/// The user's terminal: its settings and size, put in raw mode while a session's program owns
/// it (every key, Ctrl+C included, goes to the program's own terminal) and restored after.
public struct TerminalMode: Sendable {
    public let fd: Int32
    public let saved: termios

    /// The terminal on `fd`, or nil when `fd` is not a terminal.
    public init?(fd: Int32 = 0) {
        guard isatty(fd) == 1 else { return nil }
        var settings = termios()
        guard tcgetattr(fd, &settings) == 0 else { return nil }
        self.fd = fd
        self.saved = settings
    }

    /// The window size, if the terminal knows it.
    public var size: winsize? { Self.size(of: fd) }

    static func size(of fd: Int32) -> winsize? {
        var ws = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_row > 0 else { return nil }
        return ws
    }

    /// Raw mode: no echo, no line editing, no signals from keys, no output processing.
    public func makeRaw() {
        var raw = saved
        cfmakeraw(&raw)
        tcsetattr(fd, TCSADRAIN, &raw)
    }

    /// The settings as they were.
    public func restore() {
        var settings = saved
        tcsetattr(fd, TCSADRAIN, &settings)
    }
}
