import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import SpendwallConfig
import SpendwallCore
import SpendwallLedger
import SpendwallPanel
import SpendwallPolicy
import SpendwallPricing

/// The socket API's routes. It decodes, validates and answers; deciding belongs to the
/// ``PolicyEngine`` and storing to the ``LedgerWriter``, which know nothing of HTTP.
struct SocketAPI: Sendable {
    let engine: PolicyEngine
    let writer: LedgerWriter
    let events: EventBus
    let approvals: ApprovalDesk
    let state: DaemonState
    let metrics: DaemonMetrics
    let loopback: ListenerStatus
    let inFlight: InFlightCalls
    let clock: any WallClock
    let logger: Logger
    /// Anthropic's count_tokens, when an Anthropic key is configured (used only while
    /// `[estimate] anthropic_count_tokens` is on).
    var anthropicCount: AnthropicTokenCount? = nil
    /// Alerts and reconciliation (`/v1/alerts…`, `/v1/reconcile…`).
    var integrations: IntegrationsAPI? = nil
    /// The one-time login codes of the panel's links (`POST /v1/panel/link`).
    var panelLogins = PanelLoginCodes()
    /// Team mode's routes (`/v1/team…`).
    var team: TeamAPI? = nil

    /// How long a check waits for an approval (`[policy] approval_timeout`, live).
    var approvalTimeout: Swift.Duration { state.live.approvalTimeout }
    /// Tag redaction (`[privacy]`, live).
    var redactor: TagRedactor { state.live.redactor }
    /// The pre-flight estimate (`[policy] default_max_tokens`, live).
    var estimator: RequestEstimator { state.live.estimator }

    /// Answers a request. Checks are decided at once on the caller's thread; a report is
    /// answered when its row is committed; everything else runs as async work.
    func reply(to request: APIRequest, peer: PeerIdentity) -> APIReply {
        switch (request.method, request.path) {
        case (.POST, "/v1/check"): return check(request, peer: peer)
        case (.POST, "/v1/report"): return report(request)
        case (.POST, "/v1/reports"): return .later { await reports(request, peer: peer) }
        case (.POST, "/v1/estimate"): return .now(estimate(request))
        case (.GET, "/v1/policy/snapshot"): return .now(snapshot())
        case (.GET, "/v1/spend"): return .later { await spend(request) }
        case (.GET, "/v1/spend/series"): return .later { await spendSeries(request) }
        case (.POST, "/v1/panel/link"): return .now(panelLink())
        case (.PUT, let path) where path.hasPrefix("/v1/caps/"):
            let name = String(path.dropFirst("/v1/caps/".count)).removingPercentEncoding ?? ""
            return .later { await setCap(name, request) }
        case (.DELETE, let path) where path.hasPrefix("/v1/caps/"):
            let name = String(path.dropFirst("/v1/caps/".count)).removingPercentEncoding ?? ""
            return .later { await removeCap(name) }
        case (.GET, "/v1/ledger"): return .later { await ledger(request) }
        case (.GET, "/v1/health"): return .later { await health() }
        case (.POST, "/v1/reload"): return .later { await reload() }
        case (.GET, "/v1/kill"): return .later { await kills() }
        case (.POST, "/v1/kill"): return kill(request, peer: peer)
        case (.GET, "/v1/events"): return subscribe(request)
        case (.GET, "/v1/approvals"): return .later { await listApprovals(request) }
        case (.POST, "/v1/preapprovals"): return preapprove(request, peer: peer)
        case (.GET, "/v1/preapprovals"): return .now(listPreapprovals(request))
        case (.POST, let path) where path.hasPrefix("/v1/preapprovals/") && path.hasSuffix("/release"):
            return .now(
                releasePreapproval(String(path.dropFirst("/v1/preapprovals/".count).dropLast("/release".count))))
        case (.GET, "/v1/budget"): return .now(budget(request, peer: peer))
        case (_, let path) where path == "/v1/sessions" || path.hasPrefix("/v1/sessions/"):
            return sessionRoute(request, peer: peer)
        case (.POST, let path) where path.hasPrefix("/v1/approvals/") && path.hasSuffix("/resolve"):
            let id = String(path.dropFirst("/v1/approvals/".count).dropLast("/resolve".count))
            return .later { await resolveApproval(id, request, peer: peer) }
        case (_, "/v1/check"), (_, "/v1/report"), (_, "/v1/reports"), (_, "/v1/estimate"), (_, "/v1/reload"):
            return .now(
                .error(SpendwallError(.methodNotAllowed, "\(request.path) takes POST"), status: .methodNotAllowed))
        case (_, let path) where path.hasPrefix("/v1/caps/"):
            return .now(
                .error(SpendwallError(.methodNotAllowed, "\(path) takes PUT or DELETE"), status: .methodNotAllowed))
        case (_, "/v1/panel/link"):
            return .now(
                .error(SpendwallError(.methodNotAllowed, "/v1/panel/link takes POST"), status: .methodNotAllowed))
        case (_, "/v1/kill"):
            return .now(
                .error(SpendwallError(.methodNotAllowed, "/v1/kill takes GET or POST"), status: .methodNotAllowed))
        case (_, let path) where path.hasPrefix("/v1/approvals/") && path.hasSuffix("/resolve"):
            return .now(.error(SpendwallError(.methodNotAllowed, "\(path) takes POST"), status: .methodNotAllowed))
        case (_, "/v1/policy/snapshot"), (_, "/v1/spend"), (_, "/v1/ledger"), (_, "/v1/health"), (_, "/v1/events"),
            (_, "/v1/approvals"), (_, "/v1/spend/series"):
            return .now(
                .error(SpendwallError(.methodNotAllowed, "\(request.path) takes GET"), status: .methodNotAllowed))
        default:
            if let reply = integrations?.reply(to: request) { return reply }
            if let reply = team?.reply(to: request) { return reply }
            return .now(
                .error(
                    SpendwallError(.notFound, "no endpoint \(request.method) \(request.path); see docs/socket-api.md"),
                    status: .notFound))
        }
    }

    // MARK: check

    func check(_ request: APIRequest, peer: PeerIdentity) -> APIReply {
        let start = ContinuousClock.now
        let reply = decodeAndDecide(request, peer: peer)
        if case .now = reply { metrics.checkTook(ContinuousClock.now - start) }
        return reply
    }

    private func decodeAndDecide(_ request: APIRequest, peer: PeerIdentity) -> APIReply {
        let body: CheckBody
        switch decode(CheckBody.self, request) {
        case .success(let value): body = value
        case .failure(let failure): return .now(failure.response)
        }
        guard let provider = Provider(rawValue: body.provider) else {
            return .now(.badRequest("provider must be \"openai\" or \"anthropic\", not \"\(body.provider)\""))
        }
        guard !body.model.isEmpty else { return .now(.badRequest("model must not be empty")) }
        let strict: Bool
        switch body.mode ?? "default" {
        case "default": strict = false
        case "strict": strict = true
        default: return .now(.badRequest("mode must be \"default\" or \"strict\", not \"\(body.mode ?? "")\""))
        }
        guard let path = SpendPath(rawValue: body.path ?? "sdk") else {
            return .now(.badRequest("path must be \"sdk\", \"proxy\" or \"session\", not \"\(body.path ?? "")\""))
        }
        // One read of the live settings per check (they change only on a reload).
        let live = state.live
        if let refusal = failClosedRefusal(strict: strict, failMode: live.failMode) { return .now(refusal) }
        let call = CallAttributes(
            provider: provider, model: body.model, agent: body.agent.nonEmpty, app: peer.app,
            session: body.session.nonEmpty, tags: live.redactor.redact(body.tags ?? [:]))
        var estimate = live.estimator.estimate(body.request, model: body.model, provider: provider)
        if body.batch == true { estimate.batch = true }
        let held = HeldCheck(call: call, estimate: estimate, peer: peer, path: path, strict: strict)
        if provider == .anthropic, live.configuration.anthropicCountTokens, let counter = anthropicCount,
            let request = body.request
        {
            let model = body.model
            return .later { [held] in
                var refined = held
                await refined.estimate.refine(with: counter, request: request, model: model)
                return await gate(refined).response
            }
        }
        return decide(held, approved: [])
    }

    /// While the ledger cannot write, a call that must fail closed (`policy.fail_mode =
    /// "closed"`, or the caller's strict mode) is refused: its spend could not be recorded.
    /// The body says `fail_closed`, so an SDK raises instead of failing open.
    func failClosedRefusal(strict: Bool, failMode: SpendwallConfiguration.FailMode) -> APIResponse? {
        guard strict || failMode == .closed, let failing = writer.failing else { return nil }
        let why = strict ? "the call asked for strict mode" : "policy.fail_mode is \"closed\""
        let body = ErrorBody(
            error: ErrorJSON(
                code: SpendwallError.Code.unavailable.rawValue,
                message: "the ledger cannot record spend right now (\(failing)); refused because \(why)",
                fail_closed: true))
        return .json(body, status: .serviceUnavailable)
    }

    /// A check's attributes, kept while it waits for an approval.
    struct HeldCheck: Sendable {
        var call: CallAttributes
        var estimate: CallEstimate
        var peer: PeerIdentity
        var path: SpendPath
        var strict: Bool
    }

    private func decide(_ held: HeldCheck, approved: Set<String>) -> APIReply {
        switch decision(held, approved: approved) {
        case .answer(let answer): return .now(.json(answer))
        case .hold(let status, let reason):
            return .later { await holdForApproval(held, approved: approved, status: status, reason: reason).response }
        }
    }

    /// Decides a call for the proxy: as a check does, waiting out an approval if one is needed.
    func gate(_ held: HeldCheck) async -> GateResult {
        switch decision(held, approved: []) {
        case .answer(let answer): return .answer(answer)
        case .hold(let status, let reason):
            return await holdForApproval(held, approved: [], status: status, reason: reason)
        }
    }

    /// A decision, or an approval to wait for first.
    enum Decision: Sendable {
        case answer(CheckAnswer)
        case hold(CapStatus, reason: String)
    }

    /// What a gated call gets: the check's answer, or an error (the daemon is stopping).
    enum GateResult: Sendable {
        case answer(CheckAnswer)
        case failure(SpendwallError, HTTPResponseStatus)

        var response: APIResponse {
            switch self {
            case .answer(let answer): return .json(answer)
            case .failure(let error, let status): return .error(error, status: status)
            }
        }
    }

    private func decision(_ held: HeldCheck, approved: Set<String>) -> Decision {
        let (call, estimate, peer, path) = (held.call, held.estimate, held.peer, held.path)
        switch engine.check(call, estimate: estimate, peer: peer, path: path, strict: held.strict, approved: approved) {
        case .approvalRequired(let status, let reason):
            return .hold(status, reason: reason)
        case .killed(let scope):
            metrics.decided("killed")
            record(refusal(call, peer: peer, path: path, outcome: .killed))
            let reason =
                "the \(scope) kill switch is on; turn it off with `spendwall kill\(Self.killFlag(scope)) --off`"
            return .answer(
                CheckAnswer(
                    decision: "killed", reservation_id: nil, reserved_nanousd: 0, priced: true, expires_at_ms: nil,
                    reason: reason, error: ErrorJSON(code: SpendwallError.Code.killed.rawValue, message: reason)))
        case .allow(let reservation):
            metrics.decided("allow")
            publish(reservation.warnings, call: call)
            return .answer(
                CheckAnswer(
                    decision: "allow", reservation_id: reservation.id, reserved_nanousd: reservation.reservedNanoUSD,
                    priced: reservation.priced, expires_at_ms: reservation.expiresAtMS))
        case .block(let status, let reason):
            metrics.decided("block")
            let cap = CapJSON(status)
            record(refusal(call, peer: peer, path: path, outcome: .blocked))
            events.publish("CapBlocked", CapBlockedEvent(call, cap: cap, reason: reason))
            sessionBlocked(status, reason: reason)
            return .answer(
                CheckAnswer(
                    decision: "block", reservation_id: nil, reserved_nanousd: 0, priced: true, expires_at_ms: nil,
                    reason: reason, cap: cap, remaining_nanousd: status.remainingNanoUSD,
                    error: ErrorJSON(code: SpendwallError.Code.capExceeded.rawValue, message: reason, cap: cap)))
        }
    }

    /// The ledger row of a call refused before it was sent (cost 0).
    private func refusal(_ call: CallAttributes, peer: PeerIdentity, path: SpendPath, outcome: Outcome) -> SpendEvent {
        SpendEvent(
            requestID: "b_" + UUID().uuidString.lowercased(), timeMS: clock.nowMS(), path: path,
            provider: call.provider, model: call.model, agent: call.agent, app: peer.app, peerPID: peer.pid,
            peerUID: peer.uid, peerExe: peer.exe, peerScript: peer.script, session: call.session, tags: call.tags,
            priced: true, outcome: outcome)
    }

    /// Queues a refusal's row and publishes it.
    private func record(_ row: SpendEvent) {
        writer.submit(row)
        events.publish("SpendObserved", Self.eventJSON(row), timeMS: row.timeMS)
    }

    func publish(_ warnings: [CapWarning], call: CallAttributes) {
        for warning in warnings {
            events.publish("CapAlert", CapAlertEvent(call, warning: warning))
        }
    }

    // MARK: report

    func report(_ request: APIRequest) -> APIReply {
        let body: ReportBody
        switch decode(ReportBody.self, request) {
        case .success(let value): body = value
        case .failure(let failure): return .now(failure.response)
        }
        guard let outcome = Self.reportOutcome(body.outcome) else {
            return .now(
                .badRequest(
                    "outcome must be one of ok, error, partial, disconnected, killed; not \"\(body.outcome ?? "")\""))
        }
        if let problem = Self.validate(status: body.status, durationMS: body.duration_ms) {
            return .now(.badRequest(problem))
        }
        let usage = body.usage ?? Usage()
        guard let settlement = engine.settle(body.reservation_id, usage: usage) else {
            return .later { await alreadySettled(body.reservation_id) }
        }
        let r = settlement.reservation
        let event = Self.row(
            of: settlement, usage: usage, status: body.status, durationMS: body.duration_ms, outcome: outcome)
        publish(settlement.warnings, call: r.attributes)
        return .committed(event) { [events] result in
            switch result {
            case .success:
                events.publish("SpendObserved", Self.eventJSON(event), timeMS: event.timeMS)
                return .json(
                    ReportAnswer(
                        request_id: r.id, cost_nanousd: settlement.costNanoUSD, priced: r.priced, duplicate: false))
            case .failure(let error):
                return .error(error, status: .serviceUnavailable)
            }
        }
    }

    /// The ledger row of a settled reservation.
    static func row(
        of settlement: Settlement, usage: Usage, status: Int?, durationMS: Int64?, outcome: Outcome,
        estimated: Bool = false
    ) -> SpendEvent {
        let r = settlement.reservation
        return SpendEvent(
            requestID: r.id, timeMS: settlement.settledAtMS, path: r.path, provider: r.attributes.provider,
            model: r.attributes.model, agent: r.attributes.agent, app: r.peer.app, peerPID: r.peer.pid,
            peerUID: r.peer.uid, peerExe: r.peer.exe, peerScript: r.peer.script, session: r.attributes.session,
            tags: r.attributes.tags, usage: usage, costNanoUSD: settlement.costNanoUSD,
            reservedNanoUSD: r.reservedNanoUSD, priced: r.priced, status: status, outcome: outcome,
            durationMS: durationMS, reservationID: r.id, estimated: estimated)
    }

    /// A report for a reservation that is not live: a repeat of one already recorded, or unknown.
    private func alreadySettled(_ id: String) async -> APIResponse {
        do {
            if let existing = try await writer.store.event(requestID: id) {
                return .json(
                    ReportAnswer(
                        request_id: id, cost_nanousd: existing.costNanoUSD, priced: existing.priced, duplicate: true))
            }
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
        if let failing = writer.failing {
            // Its row may be among those kept for the ledger's recovery: not unknown, not yet written.
            return .error(
                SpendwallError(.unavailable, "the ledger cannot write right now (\(failing)); retry this report later"),
                status: .serviceUnavailable)
        }
        return .error(
            SpendwallError(
                .unknownReservation,
                "no reservation \(id): it was never issued by this daemon, or it expired and was already charged; send it to /v1/reports with its provider and model instead"
            ),
            status: .notFound)
    }

    static func reportOutcome(_ text: String?) -> Outcome? {
        guard let outcome = Outcome(rawValue: text ?? "ok") else { return nil }
        return [.ok, .error, .partial, .disconnected, .killed].contains(outcome) ? outcome : nil
    }

    static func validate(status: Int?, durationMS: Int64?) -> String? {
        if let status, !(100...599).contains(status) { return "status must be an HTTP status from 100 to 599" }
        if let durationMS, durationMS < 0 { return "duration_ms must not be negative" }
        return nil
    }

    // MARK: reports (batch)

    func reports(_ request: APIRequest, peer: PeerIdentity) async -> APIResponse {
        let body: BatchBody
        switch decode(BatchBody.self, request) {
        case .success(let value): body = value
        case .failure(let failure): return failure.response
        }
        guard body.reports.count <= 1000 else {
            return .badRequest("at most 1,000 reports per batch; got \(body.reports.count)")
        }
        var results = [BatchResult?](repeating: nil, count: body.reports.count)
        var unreserved: [(index: Int, event: SpendEvent)] = []
        var seen: Set<String> = []
        for (index, item) in body.reports.enumerated() {
            let requestID = item.reservation_id.nonEmpty ?? item.id
            guard !item.id.isEmpty, seen.insert(requestID).inserted else {
                results[index] = BatchResult(
                    id: item.id, result: "rejected",
                    error: ErrorJSON(
                        code: "bad_request",
                        message: item.id.isEmpty
                            ? "id must not be empty" : "the same report appears twice in this batch"))
                continue
            }
            switch prepare(item, peer: peer) {
            case .settled(let event):
                do {
                    _ = try await writer.append(event, keepOnFailure: true)
                    events.publish("SpendObserved", Self.eventJSON(event), timeMS: event.timeMS)
                    results[index] = BatchResult(id: item.id, result: "recorded", cost_nanousd: event.costNanoUSD)
                } catch {
                    return .error(Self.spendwallError(error), status: .serviceUnavailable)
                }
            case .unreserved(let event): unreserved.append((index, event))
            case .rejected(let message):
                results[index] = BatchResult(
                    id: item.id, result: "rejected", error: ErrorJSON(code: "bad_request", message: message))
            }
        }
        do {
            let appended = try await appendAll(unreserved.map(\.event))
            for ((index, event), outcome) in zip(unreserved, appended) {
                let tokens = event.usage.totalTokens
                switch outcome {
                case .inserted:
                    events.publish("SpendObserved", Self.eventJSON(event), timeMS: event.timeMS)
                    engine.record(event.attributes, costNanoUSD: event.costNanoUSD, tokens: tokens, atMS: event.timeMS)
                    results[index] = BatchResult(
                        id: body.reports[index].id, result: "recorded", cost_nanousd: event.costNanoUSD)
                case .replacedUnreported(let previous):
                    engine.record(
                        event.attributes, costNanoUSD: event.costNanoUSD - previous, tokens: 0, atMS: event.timeMS)
                    results[index] = BatchResult(
                        id: body.reports[index].id, result: "recorded", cost_nanousd: event.costNanoUSD)
                case .duplicate(let cost):
                    results[index] = BatchResult(id: body.reports[index].id, result: "duplicate", cost_nanousd: cost)
                }
            }
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
        return .json(BatchAnswer(results: results.map { $0! }))
    }

    private enum Prepared {
        case settled(SpendEvent)
        case unreserved(SpendEvent)
        case rejected(String)
    }

    private func prepare(_ item: BatchItem, peer: PeerIdentity) -> Prepared {
        guard let outcome = Self.reportOutcome(item.outcome) else {
            return .rejected("outcome must be one of ok, error, partial, disconnected, killed")
        }
        if let problem = Self.validate(status: item.status, durationMS: item.duration_ms) { return .rejected(problem) }
        let usage = item.usage ?? Usage()
        if let reservationID = item.reservation_id.nonEmpty, let settlement = engine.settle(reservationID, usage: usage)
        {
            return .settled(
                Self.row(
                    of: settlement, usage: usage, status: item.status, durationMS: item.duration_ms, outcome: outcome))
        }
        guard let providerName = item.provider, let provider = Provider(rawValue: providerName) else {
            return .rejected("a report without a live reservation needs provider \"openai\" or \"anthropic\"")
        }
        guard let model = item.model.nonEmpty else {
            return .rejected("a report without a live reservation needs a model")
        }
        guard let path = SpendPath(rawValue: item.path ?? "sdk") else {
            return .rejected("path must be sdk, proxy or session")
        }
        let now = clock.nowMS()
        if let time = item.time_ms, time <= 0 || time > now + 86_400_000 {
            return .rejected("time_ms must be a Unix time in milliseconds, not in the future")
        }
        let resolution = engine.price(model)
        return .unreserved(
            SpendEvent(
                requestID: item.reservation_id.nonEmpty ?? item.id, timeMS: min(item.time_ms ?? now, now), path: path,
                provider: provider, model: model, agent: item.agent.nonEmpty, app: peer.app, peerPID: peer.pid,
                peerUID: peer.uid, peerExe: peer.exe, peerScript: peer.script, session: item.session.nonEmpty,
                tags: redactor.redact(item.tags ?? [:]), usage: usage,
                costNanoUSD: resolution.price.cost(of: usage, batch: item.batch ?? false),
                priced: resolution.priced, status: item.status, outcome: outcome, durationMS: item.duration_ms,
                reservationID: item.reservation_id.nonEmpty))
    }

    private func appendAll(_ events: [SpendEvent]) async throws -> [AppendResult] {
        try await withThrowingTaskGroup(of: (Int, AppendResult).self) { group in
            for (index, event) in events.enumerated() {
                group.addTask { (index, try await writer.append(event)) }
            }
            var results = [AppendResult](repeating: .inserted, count: events.count)
            for try await (index, result) in group { results[index] = result }
            return results
        }
    }

    // MARK: approvals

    /// Holds a check until a person approves or denies it, or it times out. Approved, it is
    /// decided again with the cap passed; anything else answers `approval_denied`.
    private func holdForApproval(
        _ held: HeldCheck, approved: Set<String>, status: CapStatus, reason: String
    ) async -> GateResult {
        let call = held.call
        let approval = ApprovalRecord(
            id: Self.makeApprovalID(),
            createdMS: clock.nowMS(), provider: call.provider.rawValue, model: call.model, agent: call.agent,
            app: call.app, session: call.session, peerPID: held.peer.pid,
            estimatedNanoUSD: held.estimate.worstCaseCost(engine.price(call.model).price), cap: status.cap.name,
            capKey: status.key, reason: reason)
        let outcome: ApprovalDesk.Outcome
        switch await awaitApproval(approval) {
        case .failed(let error, let httpStatus): return .failure(error, httpStatus)
        case .decided(let decided): outcome = decided
        }
        switch outcome {
        case .approved:
            let passed = approved.union([status.cap.name])
            switch decision(held, approved: passed) {
            case .answer(let answer): return .answer(answer)
            case .hold(let next, let reason):
                return await holdForApproval(held, approved: passed, status: next, reason: reason)
            }
        case .denied(let why), .expired(let why):
            metrics.decided("approval_denied")
            record(refusal(call, peer: held.peer, path: held.path, outcome: .blocked))
            let message = "approval \(approval.id) for cap '\(status.cap.name)' was not given: \(why)"
            let cap = CapJSON(status)
            return .answer(
                CheckAnswer(
                    decision: "approval_denied", reservation_id: nil, reserved_nanousd: 0, priced: true,
                    expires_at_ms: nil, reason: message, cap: cap, remaining_nanousd: status.remainingNanoUSD,
                    error: ErrorJSON(code: SpendwallError.Code.approvalDenied.rawValue, message: message, cap: cap),
                    approval_id: approval.id))
        }
    }

    /// How waiting for a person ended: their decision (or the timeout), or a failure to ask.
    enum ApprovalWait: Sendable {
        case decided(ApprovalDesk.Outcome)
        case failed(SpendwallError, HTTPResponseStatus)
    }

    /// Records a pending approval, announces it, and waits for a person or the approval timeout;
    /// a timeout is recorded as `expired`. Shared by held checks and held pre-approvals.
    func awaitApproval(_ approval: ApprovalRecord) async -> ApprovalWait {
        guard approvals.open(approval.id) else {
            return .failed(SpendwallError(.unavailable, "the daemon is stopping; try again"), .serviceUnavailable)
        }
        do {
            try await writer.store.insertApproval(approval)
        } catch {
            approvals.decide(approval.id, .expired("not recorded"))
            return .failed(Self.spendwallError(error), .serviceUnavailable)
        }
        events.publish("ApprovalRequested", ApprovalJSON(approval), timeMS: approval.createdMS)
        let outcome = await approvals.wait(for: approval.id, timeout: approvalTimeout)
        if case .expired(let why) = outcome {
            _ = try? await writer.store.resolveApproval(
                id: approval.id, status: .expired, resolution: why, atMS: clock.nowMS(), byPID: nil, byExe: nil)
            events.publish(
                "ApprovalResolved", ApprovalResolvedEvent(id: approval.id, status: "expired", resolution: why))
        }
        return .decided(outcome)
    }

    static func makeApprovalID() -> String {
        "ap_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
    }

    func listApprovals(_ request: APIRequest) async -> APIResponse {
        let statusText = request.query["status"] ?? "pending"
        let status = ApprovalRecord.Status(rawValue: statusText)
        guard status != nil || statusText == "all" else {
            return .badRequest("status must be pending, approved, denied, expired or all, not \"\(statusText)\"")
        }
        do {
            let records = try await writer.store.approvals(status: status, limit: 200)
            return .json(ApprovalsAnswer(approvals: records.map(ApprovalJSON.init)))
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
    }

    func resolveApproval(_ id: String, _ request: APIRequest, peer: PeerIdentity) async -> APIResponse {
        let body: ResolveBody
        switch decode(ResolveBody.self, request) {
        case .success(let value): body = value
        case .failure(let failure): return failure.response
        }
        let approve: Bool
        switch body.decision {
        case "approve": approve = true
        case "deny": approve = false
        default: return .badRequest("decision must be \"approve\" or \"deny\", not \"\(body.decision)\"")
        }
        let who = "pid \(peer.pid.map(String.init) ?? "?") (\(peer.exe ?? peer.app))"
        let resolution = body.reason.nonEmpty ?? (approve ? "approved by \(who)" : "denied by \(who)")
        // The desk decides first: a timeout or shutdown that won the race keeps its verdict.
        guard approvals.decide(id, approve ? .approved(resolution) : .denied(resolution)) else {
            let existing = try? await writer.store.approvals(status: nil, limit: 1000).first { $0.id == id }
            guard let existing else {
                return .error(
                    SpendwallError(.notFound, "no approval \(id); see `spendwall approvals ls`"), status: .notFound)
            }
            return .error(
                SpendwallError(
                    .conflict, "approval \(id) is already \(existing.status.rawValue): \(existing.resolution ?? "")"),
                status: .conflict)
        }
        let status: ApprovalRecord.Status = approve ? .approved : .denied
        _ = try? await writer.store.resolveApproval(
            id: id, status: status, resolution: resolution, atMS: clock.nowMS(), byPID: peer.pid, byExe: peer.exe)
        events.publish(
            "ApprovalResolved", ApprovalResolvedEvent(id: id, status: status.rawValue, resolution: resolution))
        return .json(ApprovalResolvedEvent(id: id, status: status.rawValue, resolution: resolution))
    }

    // MARK: kill switch and events

    func kill(_ request: APIRequest, peer: PeerIdentity) -> APIReply {
        let body: KillBody
        switch decode(KillBody.self, request, emptyIsObject: true) {
        case .success(let value): body = value
        case .failure(let failure): return .now(failure.response)
        }
        let given = [("agent", body.agent), ("app", body.app), ("session", body.session)].filter { $0.1 != nil }
        guard given.count <= 1 else {
            return .now(.badRequest("give at most one of agent, app and session (none: the global switch)"))
        }
        guard let scope = given.first.map({ KillScope(kind: $0.0, value: $0.1) }) ?? KillScope.global else {
            return .now(.badRequest("\(given[0].0) must not be empty"))
        }
        let on = body.on ?? true
        // The switch takes effect before anything is written: the next check in scope is refused.
        let changed = engine.setKill(scope, on: on)
        if on { inFlight.kill(scope) }
        let flip = KillFlip(
            timeMS: clock.nowMS(), scope: scope, on: on, peerPID: peer.pid, peerUID: peer.uid, peerExe: peer.exe)
        let answer = KillAnswer(scope: KillScopeJSON(scope), on: on, changed: changed, time_ms: flip.timeMS)
        events.publish("KillSwitch", KillSwitchEvent(flip), timeMS: flip.timeMS)
        if on { sessionsKilled(scope) }
        return .later { [writer] in
            do {
                try await writer.store.recordKill(flip)
            } catch {
                let state = on ? "on" : "off"
                return .error(
                    SpendwallError(
                        .unavailable,
                        "the \(scope) kill switch is \(state) now, but could not be saved and will not survive a restart: \(error)"
                    ),
                    status: .serviceUnavailable)
            }
            return .json(answer)
        }
    }

    func kills() async -> APIResponse {
        do {
            let flips = try await writer.store.killFlips(limit: 50)
            let on = engine.kills.map(KillScopeJSON.init).sorted {
                ($0.kind, $0.value ?? "") < ($1.kind, $1.value ?? "")
            }
            return .json(KillsAnswer(on: on, flips: flips.map(KillSwitchEvent.init)))
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
    }

    static func killFlag(_ scope: KillScope) -> String {
        scope.value.map { " --\(scope.kind) \($0)" } ?? ""
    }

    func subscribe(_ request: APIRequest) -> APIReply {
        guard let text = request.query["kinds"], !text.isEmpty else { return .subscribe(nil) }
        let kinds = Set(text.split(separator: ",").map(String.init))
        let unknown = kinds.subtracting(EventBus.kinds)
        guard unknown.isEmpty else {
            return .now(
                .badRequest(
                    "unknown event kind \(unknown.sorted().joined(separator: ", ")); kinds are \(EventBus.kinds.sorted().joined(separator: ", "))"
                ))
        }
        return .subscribe(kinds)
    }

    // MARK: reads

    func estimate(_ request: APIRequest) -> APIResponse {
        let body: EstimateBody
        switch decode(EstimateBody.self, request) {
        case .success(let value): body = value
        case .failure(let failure): return failure.response
        }
        if let provider = body.provider, Provider(rawValue: provider) == nil {
            return .badRequest("provider must be \"openai\" or \"anthropic\", not \"\(provider)\"")
        }
        guard let model = body.model.nonEmpty ?? body.request?["model"]?.stringValue.nonEmpty else {
            return .badRequest("model is required: pass model, or a request body that names its model")
        }
        var estimate = estimator.estimate(body.request, model: model, provider: body.provider.flatMap(Provider.init))
        if body.batch == true { estimate.batch = true }
        if let tokens = body.input_tokens {
            guard tokens >= 0 else { return .badRequest("input_tokens must not be negative") }
            estimate.inputTokens = tokens
        }
        if let tokens = body.max_output_tokens {
            guard tokens >= 0 else { return .badRequest("max_output_tokens must not be negative") }
            estimate.maxOutputTokens = tokens
        }
        let resolution = engine.price(model)
        return .json(
            EstimateAnswer(
                model: model, priced: resolution.priced, price_entry: resolution.entry, exact: estimate.exact,
                input_tokens: estimate.inputTokens, max_output_tokens: estimate.maxOutputTokens,
                min_cost_nanousd: estimate.minimumCost(resolution.price),
                max_cost_nanousd: estimate.worstCaseCost(resolution.price), batch: estimate.batch,
                retired: resolution.price.retired))
    }

    func snapshot() -> APIResponse {
        let snapshot = engine.snapshot()
        return .json(
            SnapshotAnswer(
                caps: snapshot.caps.map { entry in
                    SnapshotAnswer.Cap(
                        name: entry.cap.name, scope: entry.cap.scope.dictionary, window: entry.cap.window.description,
                        action: entry.cap.action.rawValue, limit_nanousd: entry.cap.limitNanoUSD,
                        limit_tokens: entry.cap.limitTokens, warn_at: entry.cap.warnAt,
                        reserve: entry.cap.reserve.rawValue,
                        reserve_percentile: entry.cap.reserve == .expected ? entry.cap.reservePercentile : nil,
                        keys: entry.keys.map(CapJSON.init))
                },
                reservations_in_flight: snapshot.reservationsInFlight))
    }

    func spend(_ request: APIRequest) async -> APIResponse {
        let byText = request.query["by"] ?? "app"
        guard let grouping = SpendGrouping(rawValue: byText) else {
            return .badRequest(
                "by must be one of \(SpendGrouping.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(byText)\""
            )
        }
        let sinceText = request.query["since"] ?? "1d"
        guard let span = Duration.milliseconds(parsing: sinceText) else {
            return .badRequest("since must be a duration like 1h, 1d, 7d or 30d, not \"\(sinceText)\"")
        }
        let since = clock.nowMS() - span
        do {
            let summary = try await writer.store.spend(by: grouping, sinceMS: since)
            let total = summary.total
            return .json(
                SpendAnswer(
                    by: grouping.rawValue, since: sinceText, since_ms: since, total: Self.totals(total),
                    rows: Self.rows(of: summary)))
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
    }

    /// A spend summary's rows, each with its share of the total cost (4 decimals).
    static func rows(of summary: SpendSummary) -> [SpendRowJSON] {
        let total = summary.total
        return summary.rows.map { row in
            let t = row.totals
            let share = total.costNanoUSD > 0 ? Double(t.costNanoUSD) / Double(total.costNanoUSD) : 0
            return SpendRowJSON(
                key: row.key, calls: t.calls, input_tokens: t.usage.inputTokens,
                output_tokens: t.usage.outputTokens, cache_read_tokens: t.usage.cacheReadTokens,
                cache_write_tokens: t.usage.cacheWriteTokens, cache_write_1h_tokens: t.usage.cacheWrite1hTokens,
                reasoning_tokens: t.usage.reasoningTokens, cost_nanousd: t.costNanoUSD,
                share: (share * 10_000).rounded() / 10_000)
        }
    }

    static func totals(_ t: SpendTotals) -> TotalsJSON {
        TotalsJSON(
            calls: t.calls, input_tokens: t.usage.inputTokens, output_tokens: t.usage.outputTokens,
            cache_read_tokens: t.usage.cacheReadTokens, cache_write_tokens: t.usage.cacheWriteTokens,
            cache_write_1h_tokens: t.usage.cacheWrite1hTokens, reasoning_tokens: t.usage.reasoningTokens,
            cost_nanousd: t.costNanoUSD)
    }

    func ledger(_ request: APIRequest) async -> APIResponse {
        let limitText = request.query["limit"] ?? "100"
        guard let limit = Int(limitText), (1...1000).contains(limit) else {
            return .badRequest("limit must be a whole number from 1 to 1000, not \"\(limitText)\"")
        }
        var since: Int64 = 0
        if let sinceText = request.query["since"] {
            guard let span = Duration.milliseconds(parsing: sinceText) else {
                return .badRequest("since must be a duration like 1h, 1d, 7d or 30d, not \"\(sinceText)\"")
            }
            since = clock.nowMS() - span
        }
        do {
            let rows = try await writer.store.recent(
                limit: limit, sinceMS: since, agent: request.query["agent"].nonEmpty)
            return .json(LedgerAnswer(rows: rows.map(Self.eventJSON)))
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
    }

    static func eventJSON(_ e: SpendEvent) -> EventJSON {
        EventJSON(
            request_id: e.requestID, time_ms: e.timeMS, path: e.path.rawValue, provider: e.provider.rawValue,
            model: e.model, agent: e.agent, app: e.app, peer_pid: e.peerPID, peer_uid: e.peerUID, peer_exe: e.peerExe,
            peer_script: e.peerScript, session: e.session, tags: e.tags, input_tokens: e.usage.inputTokens,
            output_tokens: e.usage.outputTokens, cache_read_tokens: e.usage.cacheReadTokens,
            cache_write_tokens: e.usage.cacheWriteTokens, cache_write_1h_tokens: e.usage.cacheWrite1hTokens,
            reasoning_tokens: e.usage.reasoningTokens,
            cost_nanousd: e.costNanoUSD, reserved_nanousd: e.reservedNanoUSD, priced: e.priced, status: e.status,
            outcome: e.outcome.rawValue, duration_ms: e.durationMS, reservation_id: e.reservationID,
            estimated: e.estimated ? true : nil)
    }

    func health() async -> APIResponse {
        let clockStart = ContinuousClock.now
        let capCount = engine.currentCaps.count
        let engineLatency = ContinuousClock.now - clockStart
        let ledgerStart = ContinuousClock.now
        var ledgerError: String?
        do { try await writer.store.ping() } catch { ledgerError = "\(error)" }
        if ledgerError == nil, let failing = writer.failing { ledgerError = "writes are failing: \(failing)" }
        let ledgerLatency = ContinuousClock.now - ledgerStart
        var components: [String: HealthAnswer.Component] = [
            "engine": .init(ok: true, latency_us: engineLatency.microseconds),
            "ledger": .init(ok: ledgerError == nil, latency_us: ledgerLatency.microseconds, error: ledgerError),
        ]
        var listening: String?
        switch loopback.state {
        case .starting: components["loopback"] = .init(ok: true, latency_us: 0)
        case .listening(let address):
            listening = address
            components["loopback"] = .init(ok: true, latency_us: 0)
        case .failed(let reason): components["loopback"] = .init(ok: false, latency_us: 0, error: reason)
        }
        return .json(
            HealthAnswer(
                status: components.values.allSatisfy(\.ok) ? "ok" : "degraded", version: DaemonState.version,
                pid: getpid(),
                uid: getuid(),
                started_at_ms: state.startedAtMS, fail_mode: state.failMode, socket: state.socketPath,
                socket_activated: state.socketActivated, caps: capCount,
                components: components,
                config_error: state.configError?.description,
                kill_switches: engine.kills.map(KillScopeJSON.init).sorted {
                    $0.kind + ($0.value ?? "") < $1.kind + ($1.value ?? "")
                },
                event_subscribers: events.subscriberCount, events_dropped: events.droppedCount,
                events_queued_bytes: events.maxQueuedBytesInUse, loopback: listening))
    }

    func reload() async -> APIResponse {
        do {
            let caps = try await state.reload()
            return .json(
                ReloadAnswer(reloaded: ["spendwall.toml", "caps.toml", "labels.toml", "pricing.toml"], caps: caps))
        } catch let error as ConfigError {
            let body = ErrorBody(
                error: ErrorJSON(
                    code: SpendwallError.Code.config.rawValue, message: error.description, file: error.file,
                    line: error.line))
            return .json(body, status: .badRequest)
        } catch {
            return .error(Self.spendwallError(error), status: .internalServerError)
        }
    }

    // MARK: decoding

    func decode<T: Decodable>(
        _ type: T.Type, _ request: APIRequest, emptyIsObject: Bool = false
    ) -> Result<T, APIResponseError> {
        if emptyIsObject && request.body.readableBytes == 0 {
            return decode(type, APIRequest(method: request.method, path: request.path, body: ByteBuffer(string: "{}")))
        }
        guard request.body.readableBytes > 0 else {
            return .failure(APIResponseError(.badRequest("the request body is empty; send a JSON object")))
        }
        do {
            return .success(
                try request.body.withUnsafeReadableBytes { try JSONValueDecoder().decode(T.self, from: $0) })
        } catch let error as DecodingError {
            return .failure(APIResponseError(.badRequest(Self.describe(error))))
        } catch {
            return .failure(APIResponseError(.badRequest("the body is not valid JSON: \(error)")))
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "the body" : "field \(p.replacingOccurrences(of: ".[", with: "["))"
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context)) has the wrong type (expected \(Self.typeName(type)))"
        case .valueNotFound(let type, let context):
            return "\(path(context)) is null (expected \(Self.typeName(type)))"
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return "missing required field \(key.stringValue)" + (parent == "the body" ? "" : " in \(parent)")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the body is not valid JSON" }
            return "\(path(context)): \(context.debugDescription)"
        @unknown default:
            return "the body could not be decoded"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int64.Type, is Int.Type: return "a whole number"
        case is Bool.Type: return "true or false"
        case is Double.Type: return "a number"
        default: return type is [Any].Type ? "an array" : "an object"
        }
    }

    static func spendwallError(_ error: any Error) -> SpendwallError {
        (error as? SpendwallError) ?? SpendwallError(.unavailable, "the ledger failed: \(error)")
    }
}

/// An error response carried through `Result`.
struct APIResponseError: Error {
    let response: APIResponse
    init(_ response: APIResponse) { self.response = response }
}

extension Swift.Duration {
    var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}

extension Optional where Wrapped == String {
    var nonEmpty: String? {
        guard let self, !self.isEmpty else { return nil }
        return self
    }
}
