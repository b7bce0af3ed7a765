/// Why a session's program stopped (the ledger's `stop_reason`).
public enum StopReason: String, Sendable {
    case budgetExceeded = "budget_exceeded"
    case killed
    case userStop = "user_stop"
    case exited
}

/// How a session's program ended and what it printed.
public struct SupervisedExit: Sendable {
    /// The exit status when it exited; nil when a signal ended it.
    public var exitCode: Int32?
    /// The signal that ended it, if one did.
    public var signal: Int32?
    public var stopReason: StopReason
    public var output: OutputRecorder

    /// The exit status a shell would report: the code, or 128 + the signal.
    public var shellStatus: Int32 { exitCode ?? (128 + (signal ?? 0)) }
}
