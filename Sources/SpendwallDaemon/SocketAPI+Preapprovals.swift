import Foundation
import NIOCore
import NIOHTTP1
import SpendwallCore
import SpendwallLedger
import SpendwallPolicy

/// Pre-approvals and an agent's budget: what the MCP server asks on an agent's behalf.
extension SocketAPI {
    struct PreapprovalBody: Decodable {
        var agent: String
        var amount_nanousd: Int64?
        var amount_usd: Double?
        var reason: String
        var ttl: String?
        var provider: String?
        var model: String?
        var pid: Int32?
    }

    struct PreapprovalJSON: Encodable {
        var id: String
        var agent: String?
        var reason: String
        var amount_nanousd: Int64
        var remaining_nanousd: Int64
        var available_nanousd: Int64
        var spent_nanousd: Int64
        var calls: Int
        var calls_in_flight: Int
        var created_ms: Int64
        var expires_at_ms: Int64

        init(_ p: Preapproval) {
            id = p.id
            agent = p.attributes.agent
            reason = p.reason
            amount_nanousd = p.amountNanoUSD
            remaining_nanousd = p.remainingNanoUSD
            available_nanousd = p.availableNanoUSD
            spent_nanousd = p.spentNanoUSD
            calls = p.calls
            calls_in_flight = p.inFlight
            created_ms = p.createdAtMS
            expires_at_ms = p.expiresAtMS
        }
    }

    struct PreapprovalAnswer: Encodable {
        var decision: String
        var preapproval: PreapprovalJSON?
        var reason: String?
        var cap: CapJSON?
        var approval_id: String?
        var error: ErrorJSON?
    }

    struct BudgetAnswer: Encodable {
        var agent: String?
        var app: String
        var caps: [CapJSON]
        var killed: Bool
        var kill_switches: [String]
        var preapprovals: [PreapprovalJSON]
    }

    /// The longest a pre-approval may be held.
    static let maximumPreapprovalTTLMS: Int64 = 86_400_000

    /// The attributes of an agent's calls: its name, and the app of the process `pid` (the
    /// MCP server's parent, the agent itself) or else of the caller.
    func agentAttributes(agent: String?, pid: Int32?, provider: Provider, model: String, peer: PeerIdentity)
        -> (CallAttributes, PeerIdentity)
    {
        var who = peer
        if let pid, pid > 0 { who = state.identify(PeerCredentials(pid: pid, uid: getuid(), gid: getgid())) }
        return (CallAttributes(provider: provider, model: model, agent: agent.nonEmpty, app: who.app), who)
    }

    func preapprove(_ request: APIRequest, peer: PeerIdentity) -> APIReply {
        let body: PreapprovalBody
        switch decode(PreapprovalBody.self, request) {
        case .success(let value): body = value
        case .failure(let failure): return .now(failure.response)
        }
        guard !body.agent.isEmpty else { return .now(.badRequest("agent must not be empty")) }
        guard !body.reason.trimmingCharacters(in: .whitespaces).isEmpty else {
            return .now(.badRequest("reason must say what the budget is for"))
        }
        let amount: NanoUSD
        switch (body.amount_nanousd, body.amount_usd) {
        case (let nanos?, nil) where nanos > 0: amount = nanos
        case (nil, let dollars?) where dollars > 0:
            guard let nanos = Money.nanos(fromDollars: dollars), nanos > 0 else {
                return .now(.badRequest("amount_usd must be a positive amount of dollars"))
            }
            amount = nanos
        case (nil, nil): return .now(.badRequest("amount_usd (or amount_nanousd) is required"))
        case (_?, _?): return .now(.badRequest("give amount_usd or amount_nanousd, not both"))
        default: return .now(.badRequest("the amount must be more than zero"))
        }
        var ttl: Int64 = 3_600_000
        if let text = body.ttl {
            guard let ms = Duration.milliseconds(parsing: text), ms > 0, ms <= Self.maximumPreapprovalTTLMS else {
                return .now(.badRequest("ttl must be a duration from 1s to 24h like \"30m\", not \"\(text)\""))
            }
            ttl = ms
        }
        let provider = body.provider.flatMap(Provider.init) ?? .openai
        if let name = body.provider, Provider(rawValue: name) == nil {
            return .now(.badRequest("provider must be \"openai\" or \"anthropic\", not \"\(name)\""))
        }
        let (call, who) = agentAttributes(
            agent: body.agent, pid: body.pid, provider: provider, model: body.model ?? "(pre-approval)", peer: peer)
        switch answerPreapproval(call, amount: amount, reason: body.reason, ttl: ttl, peer: who, approved: []) {
        case .done(let response): return .now(response)
        case .ask(let status, let reason):
            return .later { [ttl] in
                await askForPreapproval(
                    call, amount: amount, reason: body.reason, ttl: ttl, peer: who, approved: [], status: status,
                    why: reason)
            }
        }
    }

    enum PreapprovalStep {
        case done(APIResponse)
        case ask(CapStatus, String)
    }

    private func answerPreapproval(
        _ call: CallAttributes, amount: NanoUSD, reason: String, ttl: Int64, peer: PeerIdentity, approved: Set<String>
    ) -> PreapprovalStep {
        switch engine.preapprove(
            call, amountNanoUSD: amount, reason: reason, ttlMS: ttl, peer: peer, approved: approved)
        {
        case .granted(let p):
            return .done(.json(PreapprovalAnswer(decision: "granted", preapproval: PreapprovalJSON(p))))
        case .block(let status, let why):
            let cap = CapJSON(status)
            return .done(
                .json(
                    PreapprovalAnswer(
                        decision: "denied", reason: why, cap: cap,
                        error: ErrorJSON(code: SpendwallError.Code.capExceeded.rawValue, message: why, cap: cap))))
        case .killed(let scope):
            let why = "the \(scope) kill switch is on; turn it off with `spendwall kill\(Self.killFlag(scope)) --off`"
            return .done(
                .json(
                    PreapprovalAnswer(
                        decision: "denied", reason: why,
                        error: ErrorJSON(code: SpendwallError.Code.killed.rawValue, message: why))))
        case .approvalRequired(let status, let why): return .ask(status, why)
        }
    }

    /// Holds a pre-approval that needs a person, through the same approvals as calls.
    private func askForPreapproval(
        _ call: CallAttributes, amount: NanoUSD, reason: String, ttl: Int64, peer: PeerIdentity,
        approved: Set<String>, status: CapStatus, why: String
    ) async -> APIResponse {
        let approval = ApprovalRecord(
            id: Self.makeApprovalID(),
            createdMS: clock.nowMS(), provider: call.provider.rawValue, model: call.model, agent: call.agent,
            app: call.app, session: nil, peerPID: peer.pid, estimatedNanoUSD: amount, cap: status.cap.name,
            capKey: status.key, reason: "pre-approval: \(reason) — \(why)")
        let outcome: ApprovalDesk.Outcome
        switch await awaitApproval(approval) {
        case .failed(let error, let httpStatus): return .error(error, status: httpStatus)
        case .decided(let decided): outcome = decided
        }
        switch outcome {
        case .approved:
            let passed = approved.union([status.cap.name])
            switch answerPreapproval(call, amount: amount, reason: reason, ttl: ttl, peer: peer, approved: passed) {
            case .done(let response): return response
            case .ask(let next, let nextWhy):
                return await askForPreapproval(
                    call, amount: amount, reason: reason, ttl: ttl, peer: peer, approved: passed, status: next,
                    why: nextWhy)
            }
        case .denied(let because), .expired(let because):
            let message = "approval \(approval.id) for cap '\(status.cap.name)' was not given: \(because)"
            let cap = CapJSON(status)
            return .json(
                PreapprovalAnswer(
                    decision: "approval_denied", reason: message, cap: cap, approval_id: approval.id,
                    error: ErrorJSON(code: SpendwallError.Code.approvalDenied.rawValue, message: message, cap: cap)))
        }
    }

    func listPreapprovals(_ request: APIRequest) -> APIResponse {
        let agent = request.query["agent"].nonEmpty
        return .json(["preapprovals": engine.preapprovals(agent: agent).map(PreapprovalJSON.init)])
    }

    func releasePreapproval(_ id: String) -> APIResponse {
        guard let released = engine.releasePreapproval(id) else {
            return .error(
                SpendwallError(.notFound, "no open pre-approval \(id) (it may have expired or been released)"),
                status: .notFound)
        }
        return .json(["released": PreapprovalJSON(released)])
    }

    /// Every cap that applies to an agent's calls, with the kill switches that stop them.
    func budget(_ request: APIRequest, peer: PeerIdentity) -> APIResponse {
        let agent = request.query["agent"].nonEmpty
        var pid: Int32?
        if let text = request.query["pid"] {
            guard let value = Int32(text), value > 0 else {
                return .badRequest("pid must be a process id, not \"\(text)\"")
            }
            pid = value
        }
        let model = request.query["model"].nonEmpty ?? "*"
        let provider = request.query["provider"].flatMap(Provider.init) ?? .openai
        let (call, _) = agentAttributes(agent: agent, pid: pid, provider: provider, model: model, peer: peer)
        let kills = engine.kills.filter { $0.covers(call) }
        return .json(
            BudgetAnswer(
                agent: agent, app: call.app, caps: engine.statuses(for: call).map(CapJSON.init),
                killed: !kills.isEmpty, kill_switches: kills.map(\.description).sorted(),
                preapprovals: engine.preapprovals(agent: agent).map(PreapprovalJSON.init)))
    }
}
