#if canImport(Glibc)
    import Glibc
#endif

/// A program launched for a session: in a pseudo-terminal of its own (its controlling terminal,
/// so TUIs, job control and Ctrl+C work as in a shell), or with pipes when there is no terminal
/// to give it.
public struct LaunchedChild: Sendable {
    public var pid: pid_t
    /// The pseudo-terminal's master side (pty mode).
    public var masterFD: Int32?
    /// The read ends of the program's stdout and stderr (pipe mode).
    public var stdoutFD: Int32?
    public var stderrFD: Int32?

    public var usesTerminal: Bool { masterFD != nil }
}

/// Why a program could not be launched.
public struct LaunchError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

public enum ChildLauncher {
    /// glibc's `POSIX_SPAWN_SETSID` (a GNU extension): the child starts a new session.
    private static let spawnSetSID: Int32 = 0x80

    /// Finds `program` in `PATH` the way a shell does (a name with a slash is used as it is).
    public static func resolve(_ program: String, path: String?) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        for dir in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + program
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }

    /// Launches `executable` with `arguments` (argv[0] first) and `environment` ("K=V").
    ///
    /// With a terminal: a new pseudo-terminal sized `size`, with `termios` copied from the user's
    /// terminal (`settings`); the child is a session leader whose controlling terminal is the pty's slave.
    /// Without: the child keeps this process's stdin, gets pipes for stdout and stderr, and runs
    /// in a process group of its own (so it can be signalled as a group).
    public static func launch(
        executable: String, arguments: [String], environment: [String], terminal: Bool, settings: termios?,
        size: winsize?
    ) throws -> LaunchedChild {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        // Signals start at their defaults and unblocked, whatever this process does with them.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)

        var child = LaunchedChild(pid: 0)
        var closeInParent: [Int32] = []
        if terminal {
            var master: Int32 = -1
            var slave: Int32 = -1
            let opened = withOptionalPointer(settings) { tp in
                withOptionalPointer(size) { wp in openpty(&master, &slave, nil, tp, wp) }
            }
            guard opened == 0 else { throw LaunchError(description: "cannot open a pseudo-terminal: \(errnoText())") }
            guard let name = ttyname(slave).map({ String(cString: $0) }) else {
                close(master)
                close(slave)
                throw LaunchError(description: "cannot name the pseudo-terminal: \(errnoText())")
            }
            _ = fcntl(master, F_SETFD, FD_CLOEXEC)
            _ = fcntl(slave, F_SETFD, FD_CLOEXEC)
            // After setsid (which glibc does before the file actions), opening the slave makes it
            // the child's controlling terminal, with the child's group in the foreground.
            posix_spawn_file_actions_addopen(&actions, 0, name, O_RDWR, 0)
            posix_spawn_file_actions_adddup2(&actions, 0, 1)
            posix_spawn_file_actions_adddup2(&actions, 0, 2)
            posix_spawnattr_setflags(
                &attributes, Int16(spawnSetSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
            child.masterFD = master
            closeInParent = [slave]
        } else {
            var out: [Int32] = [-1, -1]
            var err: [Int32] = [-1, -1]
            guard makePipe(&out), makePipe(&err) else {
                throw LaunchError(description: "cannot make pipes: \(errnoText())")
            }
            posix_spawn_file_actions_adddup2(&actions, out[1], 1)
            posix_spawn_file_actions_adddup2(&actions, err[1], 2)
            posix_spawnattr_setpgroup(&attributes, 0)
            posix_spawnattr_setflags(
                &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
            child.stdoutFD = out[0]
            child.stderrFD = err[0]
            closeInParent = [out[1], err[1]]
        }

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        for fd in closeInParent { close(fd) }
        guard result == 0 else {
            for fd in [child.masterFD, child.stdoutFD, child.stderrFD].compactMap({ $0 }) { close(fd) }
            throw LaunchError(description: "cannot run \(executable): \(String(cString: strerror(result)))")
        }
        child.pid = pid
        return child
    }

    /// A pipe whose ends close on exec (and, when asked, never block).
    static func makePipe(_ fds: inout [Int32], nonblocking: Bool = false) -> Bool {
        guard pipe(&fds) == 0 else { return false }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            if nonblocking { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        }
        return true
    }

    private static func withOptionalPointer<T, R>(_ value: T?, _ body: (UnsafePointer<T>?) -> R) -> R {
        guard var value else { return body(nil) }
        return withUnsafePointer(to: &value) { body($0) }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
