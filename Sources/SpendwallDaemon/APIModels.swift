import SpendwallCore
import SpendwallLedger
import SpendwallPolicy

// The socket API's JSON bodies (docs/socket-api.md). Property names are the wire names, so
// the default coders map them one to one with no key strategy to get wrong.

struct ErrorBody: Encodable {
    var error: ErrorJSON
}

struct ErrorJSON: Encodable {
    var code: String
    var message: String
    var cap: CapJSON?
    var file: String?
    var line: Int?
    /// Set when a call is refused because it must fail closed (the ledger cannot write).
    var fail_closed: Bool?
}

struct CapJSON: Encodable {
    var name: String
    var window: String
    var key: String
    var scope: [String: String]
    var action: String
    var limit_nanousd: Int64?
    var spent_nanousd: Int64
    var reserved_nanousd: Int64
    var remaining_nanousd: Int64?
    var limit_tokens: Int64?
    var spent_tokens: Int64
    var reserved_tokens: Int64
    var remaining_tokens: Int64?
    var warn_at: Double
    var used: Double
    var resets_at_ms: Int64?
    /// A team cap (held across machines through leases); absent for a machine's own cap.
    var team: Bool?

    init(_ status: CapStatus) {
        name = status.cap.name
        window = status.cap.window.description
        key = status.key
        scope = status.cap.scope.dictionary
        action = status.cap.action.rawValue
        team = status.cap.team ? true : nil
        limit_nanousd = status.cap.limitNanoUSD
        spent_nanousd = status.spentNanoUSD
        reserved_nanousd = status.reservedNanoUSD
        remaining_nanousd = status.remainingNanoUSD
        limit_tokens = status.cap.limitTokens
        spent_tokens = status.spentTokens
        reserved_tokens = status.reservedTokens
        remaining_tokens = status.remainingTokens
        warn_at = status.cap.warnAt
        used = (status.used * 10_000).rounded() / 10_000
        resets_at_ms = status.resetsAtMS
    }
}

struct CheckBody: Decodable {
    var provider: String
    var model: String
    var agent: String?
    var tags: [String: String]?
    var session: String?
    var request: JSONValue?
    var mode: String?
    var path: String?
    /// A batch call, billed at the model's batch share.
    var batch: Bool?
}

struct CheckAnswer: Encodable {
    var decision: String
    var reservation_id: String?
    var reserved_nanousd: Int64
    var priced: Bool
    var expires_at_ms: Int64?
    var reason: String?
    var cap: CapJSON?
    var remaining_nanousd: Int64?
    var error: ErrorJSON?
    var approval_id: String?
}

struct ReportBody: Decodable {
    var reservation_id: String
    var id: String?
    var usage: Usage?
    var status: Int?
    var duration_ms: Int64?
    var outcome: String?
}

struct ReportAnswer: Encodable {
    var request_id: String
    var cost_nanousd: Int64
    var priced: Bool
    var duplicate: Bool
}

struct BatchBody: Decodable {
    var reports: [BatchItem]
}

struct BatchItem: Decodable {
    var id: String
    var reservation_id: String?
    var time_ms: Int64?
    var provider: String?
    var model: String?
    var agent: String?
    var tags: [String: String]?
    var session: String?
    var usage: Usage?
    var status: Int?
    var duration_ms: Int64?
    var outcome: String?
    var path: String?
    var batch: Bool?
}

struct BatchAnswer: Encodable {
    var results: [BatchResult]
}

struct BatchResult: Encodable {
    var id: String
    var result: String
    var cost_nanousd: Int64?
    var error: ErrorJSON?
}

struct EstimateBody: Decodable {
    var provider: String?
    /// The model; defaults to the request body's `model`.
    var model: String?
    var request: JSONValue?
    var batch: Bool?
    /// Token counts that replace the estimate's: a known input size, or another output limit.
    var input_tokens: Int64?
    var max_output_tokens: Int64?
}

struct EstimateAnswer: Encodable {
    var model: String
    var priced: Bool
    var price_entry: String?
    var exact: Bool
    var input_tokens: Int64
    var max_output_tokens: Int64
    var min_cost_nanousd: Int64
    var max_cost_nanousd: Int64
    var batch: Bool
    var retired: String?
}

struct SnapshotAnswer: Encodable {
    struct Cap: Encodable {
        var name: String
        var scope: [String: String]
        var window: String
        var action: String
        var limit_nanousd: Int64?
        var limit_tokens: Int64?
        var warn_at: Double
        var reserve: String
        var reserve_percentile: Double?
        var keys: [CapJSON]
    }
    var caps: [Cap]
    var reservations_in_flight: Int
}

struct TotalsJSON: Encodable {
    var calls: Int64
    var input_tokens: Int64
    var output_tokens: Int64
    var cache_read_tokens: Int64
    var cache_write_tokens: Int64
    var cache_write_1h_tokens: Int64
    var reasoning_tokens: Int64
    var cost_nanousd: Int64
}

struct SpendRowJSON: Encodable {
    var key: String
    var calls: Int64
    var input_tokens: Int64
    var output_tokens: Int64
    var cache_read_tokens: Int64
    var cache_write_tokens: Int64
    var cache_write_1h_tokens: Int64
    var reasoning_tokens: Int64
    var cost_nanousd: Int64
    var share: Double
}

struct SpendAnswer: Encodable {
    var by: String
    var since: String
    var since_ms: Int64
    var total: TotalsJSON
    var rows: [SpendRowJSON]
}

struct EventJSON: Encodable {
    var request_id: String
    var time_ms: Int64
    var path: String
    var provider: String
    var model: String
    var agent: String?
    var app: String
    var peer_pid: Int32?
    var peer_uid: UInt32?
    var peer_exe: String?
    var peer_script: String?
    var session: String?
    var tags: [String: String]
    var input_tokens: Int64
    var output_tokens: Int64
    var cache_read_tokens: Int64
    var cache_write_tokens: Int64
    var cache_write_1h_tokens: Int64
    var reasoning_tokens: Int64
    var cost_nanousd: Int64
    var reserved_nanousd: Int64
    var priced: Bool
    var status: Int?
    var outcome: String
    var duration_ms: Int64?
    var reservation_id: String?
    /// Present (true) when some of the usage is an estimate.
    var estimated: Bool?
}

struct LedgerAnswer: Encodable {
    var rows: [EventJSON]
}

struct HealthAnswer: Encodable {
    struct Component: Encodable {
        var ok: Bool
        var latency_us: Int64
        var error: String?
    }
    var status: String
    var version: String
    var pid: Int32
    var uid: UInt32
    var started_at_ms: Int64
    var fail_mode: String
    var socket: String
    var socket_activated: Bool
    var caps: Int
    var components: [String: Component]
    /// The last failed reload (`caps.toml:9: ...`), until a reload succeeds.
    var config_error: String?
    var kill_switches: [KillScopeJSON]
    var event_subscribers: Int
    /// Events dropped for subscribers that fell behind (still connected).
    var events_dropped: Int
    /// The most bytes of events queued for any one subscriber (bounded at 4 MiB).
    var events_queued_bytes: Int
    /// Where the loopback listener (the proxy and `/metrics`) listens, once bound.
    var loopback: String?
}

struct ReloadAnswer: Encodable {
    var reloaded: [String]
    var caps: Int
}

// MARK: kill switch and events

struct KillBody: Decodable {
    var agent: String?
    var app: String?
    var session: String?
    var on: Bool?
}

struct KillScopeJSON: Encodable {
    var kind: String
    var value: String?

    init(_ scope: KillScope) {
        kind = scope.kind
        value = scope.value
    }
}

struct KillAnswer: Encodable {
    var scope: KillScopeJSON
    var on: Bool
    var changed: Bool
    var time_ms: Int64
}

struct KillSwitchEvent: Encodable {
    var scope: KillScopeJSON
    var on: Bool
    var time_ms: Int64
    var by: Peer

    struct Peer: Encodable {
        var pid: Int32?
        var uid: UInt32?
        var exe: String?
    }

    init(_ flip: KillFlip) {
        scope = KillScopeJSON(flip.scope)
        on = flip.on
        time_ms = flip.timeMS
        by = Peer(pid: flip.peerPID, uid: flip.peerUID, exe: flip.peerExe)
    }
}

struct KillsAnswer: Encodable {
    var on: [KillScopeJSON]
    var flips: [KillSwitchEvent]
}

struct CallJSON: Encodable {
    var provider: String
    var model: String
    var agent: String?
    var app: String
    var session: String?
    var tags: [String: String]

    init(_ call: CallAttributes) {
        provider = call.provider.rawValue
        model = call.model
        agent = call.agent
        app = call.app
        session = call.session
        tags = call.tags
    }
}

struct CapBlockedEvent: Encodable {
    var call: CallJSON
    var cap: CapJSON
    var reason: String

    init(_ call: CallAttributes, cap: CapJSON, reason: String) {
        self.call = CallJSON(call)
        self.cap = cap
        self.reason = reason
    }
}

struct CapAlertEvent: Encodable {
    var call: CallJSON
    var cap: CapJSON
    /// True when an `alert` cap's limit itself was passed; false at its warn_at line.
    var exceeded: Bool

    init(_ call: CallAttributes, warning: CapWarning) {
        self.call = CallJSON(call)
        cap = CapJSON(warning.status)
        exceeded = warning.exceeded
    }
}

struct ConfigReloadedEvent: Encodable {
    var caps: Int
}

struct ConfigErrorEvent: Encodable {
    var file: String?
    var line: Int?
    var message: String
}

// MARK: approvals

struct ResolveBody: Decodable {
    var decision: String
    var reason: String?
}

struct ApprovalJSON: Encodable {
    var id: String
    var created_ms: Int64
    var provider: String
    var model: String
    var agent: String?
    var app: String
    var session: String?
    var peer_pid: Int32?
    var estimated_nanousd: Int64
    var cap: String
    var cap_key: String
    var reason: String
    var status: String
    var resolved_ms: Int64?
    var resolution: String?
    var resolved_by_pid: Int32?
    var resolved_by_exe: String?

    init(_ a: ApprovalRecord) {
        id = a.id
        created_ms = a.createdMS
        provider = a.provider
        model = a.model
        agent = a.agent
        app = a.app
        session = a.session
        peer_pid = a.peerPID
        estimated_nanousd = a.estimatedNanoUSD
        cap = a.cap
        cap_key = a.capKey
        reason = a.reason
        status = a.status.rawValue
        resolved_ms = a.resolvedMS
        resolution = a.resolution
        resolved_by_pid = a.resolvedByPID
        resolved_by_exe = a.resolvedByExe
    }
}

struct ApprovalsAnswer: Encodable {
    var approvals: [ApprovalJSON]
}

struct ApprovalResolvedEvent: Encodable {
    var id: String
    var status: String
    var resolution: String
}

// MARK: - Answers sent on every call, written without JSONEncoder (same JSON, fewer cycles).
// `APIModelsWritingTests` checks each against what JSONEncoder makes of it.

extension ErrorBody: JSONWritable {
    func write(to writer: inout JSONWriter) {
        writer.object { w in
            w.key("error")
            error.write(to: &w)
        }
    }
}

extension ErrorJSON: JSONWritable {
    func write(to writer: inout JSONWriter) {
        writer.object { w in
            w.member("code", code)
            w.member("message", message)
            if let cap {
                w.key("cap")
                cap.write(to: &w)
            }
            w.member("file", file)
            w.member("line", line)
            w.member("fail_closed", fail_closed)
        }
    }
}

extension CapJSON: JSONWritable {
    func write(to writer: inout JSONWriter) {
        writer.object { w in
            w.member("name", name)
            w.member("window", window)
            w.member("key", key)
            w.member("scope", scope)
            w.member("action", action)
            w.member("limit_nanousd", limit_nanousd)
            w.member("spent_nanousd", spent_nanousd)
            w.member("reserved_nanousd", reserved_nanousd)
            w.member("remaining_nanousd", remaining_nanousd)
            w.member("limit_tokens", limit_tokens)
            w.member("spent_tokens", spent_tokens)
            w.member("reserved_tokens", reserved_tokens)
            w.member("remaining_tokens", remaining_tokens)
            w.member("warn_at", warn_at)
            w.member("used", used)
            w.member("resets_at_ms", resets_at_ms)
            if let team { w.member("team", team) }
        }
    }
}

extension CheckAnswer: JSONWritable {
    func write(to writer: inout JSONWriter) {
        writer.object { w in
            w.member("decision", decision)
            w.member("reservation_id", reservation_id)
            w.member("reserved_nanousd", reserved_nanousd)
            w.member("priced", priced)
            w.member("expires_at_ms", expires_at_ms)
            w.member("reason", reason)
            if let cap {
                w.key("cap")
                cap.write(to: &w)
            }
            w.member("remaining_nanousd", remaining_nanousd)
            if let error {
                w.key("error")
                error.write(to: &w)
            }
            w.member("approval_id", approval_id)
        }
    }
}

extension ReportAnswer: JSONWritable {
    func write(to writer: inout JSONWriter) {
        writer.object { w in
            w.member("request_id", request_id)
            w.member("cost_nanousd", cost_nanousd)
            w.member("priced", priced)
            w.member("duplicate", duplicate)
        }
    }
}

// MARK: sessions

struct SessionBody: Decodable {
    var command: [String]
    var name: String?
    var cwd: String?
    var git_branch: String?
    var git_head: String?
    var agent: String?
    var tags: [String: String]?
    var budget_nanousd: Int64?
    var budget_tokens: Int64?
    var terminal: String?
    var pid: Int32?
}

struct SessionJSON: Encodable {
    var id: String
    var status: String
    var name: String?
    var command: [String]
    var cwd: String?
    var git_branch: String?
    var git_head: String?
    var agent: String?
    var tags: [String: String]
    var budget_nanousd: Int64?
    var budget_tokens: Int64?
    var terminal: String?
    var pid: Int32?
    var started_ms: Int64
    var ended_ms: Int64?
    var exit_code: Int32?
    var exit_signal: Int32?
    var stop_reason: String?
    var resume_command: String?
    var spend: TotalsJSON?

    init(_ s: SessionRecord, spend: TotalsJSON?) {
        id = s.id
        status = s.isRunning ? "running" : "ended"
        name = s.name
        command = s.command
        cwd = s.cwd
        git_branch = s.gitBranch
        git_head = s.gitHead
        agent = s.agent
        tags = s.tags
        budget_nanousd = s.budgetNanoUSD
        budget_tokens = s.budgetTokens
        terminal = s.terminal
        pid = s.pid
        started_ms = s.startedMS
        ended_ms = s.endedMS
        exit_code = s.exitCode
        exit_signal = s.exitSignal
        stop_reason = s.stopReason?.rawValue
        resume_command = s.resumeCommand
        self.spend = spend
    }
}

struct SessionStartAnswer: Encodable {
    var session: SessionJSON
    var proxy_url: String
    var openai_base_url: String
    var anthropic_base_url: String
    var cap: CapJSON?
}

struct SessionsAnswer: Encodable {
    var sessions: [SessionJSON]
}

struct SessionModelJSON: Encodable {
    var model: String
    var calls: Int64
    var input_tokens: Int64
    var output_tokens: Int64
    var cache_read_tokens: Int64
    var cache_write_tokens: Int64
    var reasoning_tokens: Int64
    var cost_nanousd: Int64
}

struct SessionArtifactJSON: Encodable {
    var kind: String
    var size: Int
    var truncated: Bool
    var created_ms: Int64
    var content_base64: String?
}

struct SessionShowAnswer: Encodable {
    var session: SessionJSON
    var by_model: [SessionModelJSON]
    var artifacts: [SessionArtifactJSON]
    /// The `git status --porcelain` lines of the snapshot taken at exit.
    var changed_files: [String]?
    var cap: CapJSON?
}

struct SessionFinishBody: Decodable {
    var stop_reason: String
    var exit_code: Int32?
    var exit_signal: Int32?
    var resume_command: String?
    var artifacts: [ArtifactBody]?

    struct ArtifactBody: Decodable {
        var kind: String
        var content_base64: String
        var truncated: Bool?
    }
}

/// Published when a running session must stop: its budget is spent, or a kill switch covers it.
struct SessionStopEvent: Encodable {
    var session: String
    var reason: String
    var message: String
}
