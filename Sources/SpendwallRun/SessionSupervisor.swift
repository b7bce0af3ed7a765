import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a launched program to its end: relays its terminal (or pipes) to the user's, forwards
/// window sizes and signals, and stops it gracefully when asked — SIGINT to its foreground
/// process group (Ctrl+C), SIGTERM after `grace`, SIGKILL after another `grace`.
///
/// ``run()`` blocks its thread in a `poll` loop; ``requestStop(_:)`` and ``notify(_:)`` may be
/// called from any thread.
public final class SessionSupervisor: Sendable {
    private let child: LaunchedChild
    private let terminal: TerminalMode?
    private let graceMS: Int64
    private let wake: WakePipe
    private let inbox = Mutex(Inbox())

    private struct Inbox {
        var stop: StopReason?
        var notices: [String] = []
    }

    /// `wake` must already catch SIGCHLD, SIGWINCH, SIGINT, SIGTERM and SIGHUP (before the
    /// launch, so an early exit is not missed).
    public init(child: LaunchedChild, terminal: TerminalMode?, graceMS: Int64, wake: WakePipe) {
        self.child = child
        self.terminal = terminal
        self.graceMS = graceMS
        self.wake = wake
    }

    /// Asks for a graceful stop (the first reason given is the one recorded).
    public func requestStop(_ reason: StopReason) {
        inbox.withLock { if $0.stop == nil { $0.stop = reason } }
        wake.post()
    }

    /// Shows a one-line notice without disturbing the program's screen: the terminal's title
    /// (pty), or a line on stderr (pipes).
    public func notify(_ text: String) {
        inbox.withLock { $0.notices.append(text) }
        wake.post()
    }

    /// Runs until the program has exited and its output is read.
    public func run() -> SupervisedExit {
        var loop = Loop(child: child, terminal: terminal, graceMS: graceMS)
        terminal?.makeRaw()
        defer { terminal?.restore() }
        loop.resize()
        while !loop.finished {
            var fds: [pollfd] = [pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0)]
            for (fd, events) in loop.interests { fds.append(pollfd(fd: fd, events: events, revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), loop.timeoutMS())
            if ready < 0 && errno != EINTR { break }
            var sawOutput = false
            if fds[0].revents != 0 {
                for byte in wake.drain() {
                    if byte == WakePipe.message {
                        let (stop, notices) = inbox.withLock { inbox in
                            defer { inbox.notices = [] }
                            return (inbox.stop, inbox.notices)
                        }
                        if let stop { loop.stop(stop) }
                        loop.notices += notices
                    } else {
                        loop.signal(Int32(byte))
                    }
                }
            }
            for entry in fds.dropFirst() where entry.revents != 0 {
                if entry.revents & Int16(POLLOUT) != 0 { loop.flushInput() }
                if entry.revents & ~Int16(POLLOUT) != 0 { sawOutput = loop.pump(entry.fd) || sawOutput }
            }
            loop.reap()
            loop.escalate()
            if !sawOutput { loop.showNotices() }
        }
        loop.showNotices()
        loop.closeAll()
        return SupervisedExit(
            exitCode: loop.exitCode, signal: loop.exitSignal, stopReason: loop.reason ?? .exited, output: loop.output)
    }
}

/// The supervisor's loop state, owned by the thread in ``SessionSupervisor/run()``.
private struct Loop {
    let child: LaunchedChild
    let terminal: TerminalMode?
    let graceMS: Int64
    var output = OutputRecorder()
    var open: Set<Int32>
    var stdinOpen: Bool
    /// The user's keys not yet taken by the program's terminal. The master is non-blocking, so a
    /// program that stops reading its input can never stop this loop from reading its output.
    var pendingInput: [UInt8] = []
    var reason: StopReason?
    var stage = 0
    var deadlineMS: Int64 = 0
    var exitCode: Int32?
    var exitSignal: Int32?
    var reaped = false
    var drainUntilMS: Int64 = 0
    var notices: [String] = []

    init(child: LaunchedChild, terminal: TerminalMode?, graceMS: Int64) {
        self.child = child
        self.terminal = terminal
        self.graceMS = graceMS
        open = Set([child.masterFD, child.stdoutFD, child.stderrFD].compactMap { $0 })
        if let master = child.masterFD { _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK) }
        stdinOpen = child.usesTerminal && terminal != nil
    }

    /// What to poll: the program's output (and, while there is input to hand it, room in its
    /// terminal), and the user's keys while little is waiting.
    var interests: [(Int32, Int16)] {
        var result: [(Int32, Int16)] = open.sorted().map { fd in
            let wantsRoom = fd == child.masterFD && !pendingInput.isEmpty
            return (fd, Int16(POLLIN) | (wantsRoom ? Int16(POLLOUT) : 0))
        }
        if stdinOpen && pendingInput.count < 65536 { result.append((0, Int16(POLLIN))) }
        return result
    }

    /// Hands waiting keys to the program's terminal, as much as it takes now.
    mutating func flushInput() {
        guard let master = child.masterFD, !pendingInput.isEmpty else { return }
        let n = pendingInput.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
        if n > 0 { pendingInput.removeFirst(n) }
    }

    /// Done once the program is reaped and its output read (or no more comes for a moment: a
    /// background process it left may hold the terminal open).
    var finished: Bool { reaped && (open.isEmpty || Self.nowMS() >= drainUntilMS) }

    func timeoutMS() -> Int32 {
        var timeout: Int64 = 1000
        if stage == 1 || stage == 2 { timeout = min(timeout, max(0, deadlineMS - Self.nowMS())) }
        if reaped { timeout = min(timeout, max(0, drainUntilMS - Self.nowMS())) }
        if !notices.isEmpty { timeout = min(timeout, 100) }
        return Int32(timeout)
    }

    /// Moves bytes from `fd`; returns whether program output was seen.
    mutating func pump(_ fd: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return false }
        if fd == 0 && stdinOpen {
            // The user's keys go to the program's terminal.
            if n <= 0 {
                stdinOpen = false
            } else {
                pendingInput += buffer[..<n]
                flushInput()
            }
            return false
        }
        guard n > 0 else {
            // EOF, or EIO on the master once every holder of the terminal's slave has closed it.
            open.remove(fd)
            return false
        }
        Self.writeAll(fd == child.stderrFD ? 2 : 1, buffer[..<n])
        output.append(buffer[..<n])
        return true
    }

    mutating func signal(_ signo: Int32) {
        switch signo {
        case SIGCHLD: reap()
        case SIGWINCH: resize()
        case SIGINT, SIGTERM, SIGHUP:
            if reason != nil && stage > 0 {
                // Asked again while stopping: go to the next step now.
                deadlineMS = 0
                escalate()
            } else {
                stop(.userStop)
            }
        default: break
        }
    }

    /// Copies the user's window size to the program's terminal (which signals SIGWINCH to it).
    func resize() {
        guard let master = child.masterFD, let terminal, var size = terminal.size else { return }
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
    }

    /// Begins a graceful stop: Ctrl+C to the foreground process group.
    mutating func stop(_ why: StopReason) {
        if reason == nil { reason = why }
        guard stage == 0, !reaped else { return }
        stage = 1
        deadlineMS = Self.nowMS() + graceMS
        send(SIGINT, foregroundOnly: true)
    }

    /// SIGTERM, then SIGKILL, each when the grace period has passed without an exit.
    mutating func escalate() {
        guard !reaped, stage == 1 || stage == 2, Self.nowMS() >= deadlineMS else { return }
        stage += 1
        deadlineMS = Self.nowMS() + graceMS
        send(stage == 2 ? SIGTERM : SIGKILL, foregroundOnly: false)
    }

    /// Signals the terminal's foreground process group (where Ctrl+C would go) and, unless
    /// `foregroundOnly`, the program's own process group too.
    private func send(_ signo: Int32, foregroundOnly: Bool) {
        var groups: [pid_t] = []
        if let master = child.masterFD {
            let foreground = tcgetpgrp(master)
            if foreground > 0 { groups.append(foreground) }
        }
        if groups.isEmpty || !foregroundOnly { groups.append(child.pid) }
        for group in Set(groups) { _ = kill(-group, signo) }
    }

    mutating func reap() {
        guard !reaped else { return }
        var status: Int32 = 0
        let pid = waitpid(child.pid, &status, WNOHANG)
        guard pid == child.pid else { return }
        reaped = true
        drainUntilMS = Self.nowMS() + 300
        if status & 0x7F == 0 {
            exitCode = (status >> 8) & 0xFF
        } else {
            exitSignal = status & 0x7F
        }
    }

    mutating func showNotices() {
        for notice in notices {
            if terminal != nil {
                Self.writeAll(1, Array("\u{1B}]0;spendwall: \(notice)\u{07}".utf8)[...])
            } else {
                Self.writeAll(2, Array("spendwall: \(notice)\n".utf8)[...])
            }
        }
        notices = []
    }

    func closeAll() {
        for fd in [child.masterFD, child.stdoutFD, child.stderrFD].compactMap({ $0 }) { close(fd) }
    }

    static func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) {
        var rest = bytes
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            rest = rest.dropFirst(n)
        }
    }

    static func nowMS() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
