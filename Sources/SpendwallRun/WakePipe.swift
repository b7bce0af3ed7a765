#if canImport(Glibc)
    import Glibc
#endif

/// The write end of the supervisor's wake-up pipe, for the signal handler (which may touch
/// nothing but async-signal-safe calls and plain globals).
nonisolated(unsafe) private var wakeWriteFD: Int32 = -1

private func onSignal(_ signo: Int32) {
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: signo)
    _ = write(wakeWriteFD, &byte, 1)
    errno = saved
}

/// A self-pipe that turns signals (and messages from other threads) into bytes a `poll` loop
/// reads: each caught signal writes its number, ``post()`` writes ``WakePipe/message``.
public final class WakePipe: @unchecked Sendable {
    /// The byte ``post()`` writes (no signal has this number).
    static let message: UInt8 = 0xFE
    let readFD: Int32
    private let writeFD: Int32
    private var previous: [Int32: sigaction] = [:]

    public init() throws {
        var fds: [Int32] = [-1, -1]
        guard ChildLauncher.makePipe(&fds, nonblocking: true) else {
            throw LaunchError(description: "cannot make a pipe: \(ChildLauncher.errnoText())")
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    /// Catches `signals` until ``restore()``: each arrives as its number on the pipe.
    public func catchSignals(_ signals: [Int32]) {
        wakeWriteFD = writeFD
        for signo in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = onSignal
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            var old = sigaction()
            sigaction(signo, &action, &old)
            previous[signo] = old
        }
    }

    /// Puts back the handlers there were before ``catchSignals(_:)``.
    public func restore() {
        for (signo, var old) in previous { sigaction(signo, &old, nil) }
        previous = [:]
    }

    /// Wakes the loop from another thread.
    public func post() {
        var byte = Self.message
        _ = write(writeFD, &byte, 1)
    }

    /// Reads what is waiting (signal numbers and messages).
    func drain() -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let n = read(readFD, &buffer, buffer.count)
            guard n > 0 else { break }
            result += buffer[..<n]
        }
        return result
    }

    deinit {
        close(readFD)
        close(writeFD)
    }
}
