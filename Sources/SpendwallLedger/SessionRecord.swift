import SpendwallCore

/// A `spendwall run` session: what was launched, where, under what budget, and how it ended.
public struct SessionRecord: Sendable, Hashable {
    /// Why a session ended.
    public enum StopReason: String, Sendable, CaseIterable {
        /// The session's budget was reached and the program was stopped.
        case budgetExceeded = "budget_exceeded"
        /// A kill switch covering the session was turned on.
        case killed
        /// The person running it stopped it (SIGINT/SIGTERM/SIGHUP to `spendwall run`).
        case userStop = "user_stop"
        /// The program exited by itself.
        case exited
        /// `spendwall run` went away without ending the session (killed outright, a crash): the
        /// daemon found its process gone and ended the session itself.
        case lost
    }

    public var id: String
    public var name: String?
    /// The command and its arguments.
    public var command: [String]
    public var cwd: String?
    public var gitBranch: String?
    public var gitHead: String?
    public var agent: String?
    public var tags: [String: String]
    public var budgetNanoUSD: NanoUSD?
    public var budgetTokens: Int64?
    /// `pty` or `pipe`: how the program's terminal was given.
    public var terminal: String?
    /// The pid of `spendwall run`.
    public var pid: Int32?
    public var startedMS: Int64
    public var endedMS: Int64?
    public var exitCode: Int32?
    public var exitSignal: Int32?
    public var stopReason: StopReason?
    public var resumeCommand: String?

    public init(
        id: String, name: String?, command: [String], cwd: String?, gitBranch: String?, gitHead: String?,
        agent: String?, tags: [String: String], budgetNanoUSD: NanoUSD?, budgetTokens: Int64?, terminal: String?,
        pid: Int32?, startedMS: Int64
    ) {
        self.id = id
        self.name = name
        self.command = command
        self.cwd = cwd
        self.gitBranch = gitBranch
        self.gitHead = gitHead
        self.agent = agent
        self.tags = tags
        self.budgetNanoUSD = budgetNanoUSD
        self.budgetTokens = budgetTokens
        self.terminal = terminal
        self.pid = pid
        self.startedMS = startedMS
    }

    /// True until the session is finished.
    public var isRunning: Bool { endedMS == nil }
}

/// How a session ended, as `spendwall run` reports it.
public struct SessionEnding: Sendable, Hashable {
    public var endedMS: Int64
    public var exitCode: Int32?
    public var exitSignal: Int32?
    public var stopReason: SessionRecord.StopReason
    public var resumeCommand: String?

    public init(
        endedMS: Int64, exitCode: Int32?, exitSignal: Int32?, stopReason: SessionRecord.StopReason,
        resumeCommand: String?
    ) {
        self.endedMS = endedMS
        self.exitCode = exitCode
        self.exitSignal = exitSignal
        self.stopReason = stopReason
        self.resumeCommand = resumeCommand
    }
}

/// Something a session left behind: `git` (changed files and diff) or `output` (raw terminal
/// bytes), each size-capped by the client.
public struct SessionArtifact: Sendable, Hashable {
    public var kind: String
    public var createdMS: Int64
    public var truncated: Bool
    /// The content's size in bytes (also when the content was not read).
    public var size: Int
    /// The bytes; empty when read without content.
    public var content: [UInt8]

    public init(kind: String, createdMS: Int64, truncated: Bool, content: [UInt8], size: Int? = nil) {
        self.kind = kind
        self.createdMS = createdMS
        self.truncated = truncated
        self.content = content
        self.size = size ?? content.count
    }
}

/// A session's spend from the ledger: the total and by model.
public struct SessionSpend: Sendable {
    public var total: SpendTotals
    public var byModel: [(model: String, totals: SpendTotals)]

    public init(total: SpendTotals = SpendTotals(), byModel: [(model: String, totals: SpendTotals)] = []) {
        self.total = total
        self.byModel = byModel
    }
}

/// Where sessions are kept (the ledger's `sessions` and `session_artifacts` tables).
public protocol SessionStore: Sendable {
    /// Records a new session.
    func insertSession(_ session: SessionRecord) async throws
    /// Records how a running session ended and what it left; false when it was not running.
    func finishSession(id: String, ending: SessionEnding, artifacts: [SessionArtifact]) async throws -> Bool
    /// One session, if there is such a session.
    func session(id: String) async throws -> SessionRecord?
    /// Sessions, newest first.
    func sessions(limit: Int) async throws -> [SessionRecord]
    /// Sessions not finished (to take their caps back at start-up).
    func runningSessions() async throws -> [SessionRecord]
    /// A session's spend, from its ledger rows.
    func sessionSpend(id: String) async throws -> SessionSpend
    /// A session's artifacts, without their content when `withContent` is false.
    func sessionArtifacts(id: String, withContent: Bool) async throws -> [SessionArtifact]
}
