import Foundation
import NIOHTTP1
import SpendwallCore
import SpendwallLedger
import SpendwallPolicy

/// `spendwall run` sessions: register one (its budget becomes a cap on its calls alone), finish
/// it with how it ended and what it left, list and show them with their spend from the ledger.
extension SocketAPI {
    /// The artifact kinds a session may leave, and the most bytes the daemon keeps of each.
    static let artifactKinds: [String: Int] = ["git_status": 256 << 10, "git_diff": 1 << 20, "output": 2 << 20]

    func sessionRoute(_ request: APIRequest, peer: PeerIdentity) -> APIReply {
        let path = request.path
        if path == "/v1/sessions" {
            switch request.method {
            case .POST: return .later { await startSession(request, peer: peer) }
            case .GET: return .later { await listSessions(request) }
            default:
                return .now(
                    .error(
                        SpendwallError(.methodNotAllowed, "/v1/sessions takes GET or POST"), status: .methodNotAllowed))
            }
        }
        let rest = path.dropFirst("/v1/sessions/".count).split(separator: "/", omittingEmptySubsequences: false)
        let id = rest.first.map { String($0).removingPercentEncoding ?? String($0) } ?? ""
        switch (request.method, rest.count, rest.dropFirst().first) {
        case (.GET, 1, _): return .later { await showSession(id) }
        case (.POST, 2, "finish"): return .later { await finishSession(id, request) }
        case (.GET, 3, "artifacts"):
            let kind = String(rest[2])
            return .later { await sessionArtifact(id, kind: kind) }
        case (_, 1, _), (_, 2, "finish"), (_, 3, "artifacts"):
            return .now(
                .error(SpendwallError(.methodNotAllowed, "wrong method for \(path)"), status: .methodNotAllowed))
        default:
            return .now(
                .error(
                    SpendwallError(.notFound, "no endpoint \(request.method) \(path); see docs/socket-api.md"),
                    status: .notFound))
        }
    }

    // MARK: start

    func startSession(_ request: APIRequest, peer: PeerIdentity) async -> APIResponse {
        let body: SessionBody
        switch decode(SessionBody.self, request) {
        case .success(let value): body = value
        case .failure(let failure): return failure.response
        }
        guard let program = body.command.first, !program.isEmpty else {
            return .badRequest("command must name the program to run: [\"claude\", …]")
        }
        if let budget = body.budget_nanousd, budget <= 0 {
            return .badRequest("budget_nanousd must be more than 0, not \(budget)")
        }
        if let budget = body.budget_tokens, budget <= 0 {
            return .badRequest("budget_tokens must be more than 0, not \(budget)")
        }
        if let terminal = body.terminal, terminal != "pty", terminal != "pipe" {
            return .badRequest("terminal must be \"pty\" or \"pipe\", not \"\(terminal)\"")
        }
        // A daemon started by socket activation for this very request may still be binding.
        for _ in 0..<40 where loopback.state == .starting { try? await Task.sleep(for: .milliseconds(50)) }
        guard case .listening(let address) = loopback.state else {
            return .error(
                SpendwallError(
                    .unavailable,
                    "the loopback proxy is not listening, so a session's calls could not be checked; see `spendwall doctor`"
                ),
                status: .serviceUnavailable)
        }
        let id = Self.makeSessionID()
        let record = SessionRecord(
            id: id, name: body.name.nonEmpty, command: body.command, cwd: body.cwd.nonEmpty,
            gitBranch: body.git_branch.nonEmpty, gitHead: body.git_head.nonEmpty, agent: body.agent.nonEmpty,
            tags: redactor.redact(body.tags ?? [:]), budgetNanoUSD: body.budget_nanousd,
            budgetTokens: body.budget_tokens, terminal: body.terminal, pid: body.pid ?? peer.pid,
            startedMS: clock.nowMS())
        do {
            try await state.store.insertSession(record)
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
        adopt(record, spentNanoUSD: 0, spentTokens: 0)
        let proxy = "http://\(address)/session/\(id)"
        return .json(
            SessionStartAnswer(
                session: SessionJSON(record, spend: nil), proxy_url: proxy, openai_base_url: proxy + "/v1",
                anthropic_base_url: proxy, cap: sessionCapStatus(id)))
    }

    /// Takes a running session into the daemon: its cap (with what it spent so far) and its
    /// attribution for the proxy. Also used at start-up for sessions that outlived a restart.
    func adopt(_ record: SessionRecord, spentNanoUSD: NanoUSD, spentTokens: Int64) {
        if record.budgetNanoUSD != nil || record.budgetTokens != nil {
            engine.addSessionCap(
                .session(record.id, limitNanoUSD: record.budgetNanoUSD, limitTokens: record.budgetTokens),
                spentNanoUSD: spentNanoUSD, spentTokens: spentTokens)
        }
        state.sessions.add(.init(id: record.id, agent: record.agent, tags: record.tags))
    }

    static func makeSessionID() -> String {
        var rng = SystemRandomNumberGenerator()
        let value = rng.next() as UInt64
        let hex = String(value >> 16, radix: 16)
        return "s-" + String(repeating: "0", count: 12 - hex.count) + hex
    }

    private func sessionCapStatus(_ id: String) -> CapJSON? {
        let name = Cap.sessionCapName(id)
        return engine.snapshot().caps.first { $0.cap.name == name }?.keys.first.map(CapJSON.init)
    }

    // MARK: finish

    func finishSession(_ id: String, _ request: APIRequest) async -> APIResponse {
        let body: SessionFinishBody
        switch decode(SessionFinishBody.self, request) {
        case .success(let value): body = value
        case .failure(let failure): return failure.response
        }
        guard let reason = SessionRecord.StopReason(rawValue: body.stop_reason) else {
            return .badRequest(
                "stop_reason must be one of \(SessionRecord.StopReason.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(body.stop_reason)\""
            )
        }
        let now = clock.nowMS()
        var artifacts: [SessionArtifact] = []
        for item in body.artifacts ?? [] {
            guard let limit = Self.artifactKinds[item.kind] else {
                return .badRequest(
                    "artifact kind must be one of \(Self.artifactKinds.keys.sorted().joined(separator: ", ")), not \"\(item.kind)\""
                )
            }
            guard let data = Data(base64Encoded: item.content_base64) else {
                return .badRequest("the \(item.kind) artifact's content_base64 is not base64")
            }
            let bytes = [UInt8](data.prefix(limit))
            artifacts.append(
                SessionArtifact(
                    kind: item.kind, createdMS: now, truncated: (item.truncated ?? false) || data.count > limit,
                    content: bytes))
        }
        let ending = SessionEnding(
            endedMS: now, exitCode: body.exit_code, exitSignal: body.exit_signal, stopReason: reason,
            resumeCommand: body.resume_command.nonEmpty)
        do {
            guard let existing = try await state.store.session(id: id) else { return Self.unknownSession(id) }
            guard try await state.store.finishSession(id: id, ending: ending, artifacts: artifacts) else {
                return .error(
                    SpendwallError(
                        .conflict,
                        "session \(id) already ended (\(existing.stopReason?.rawValue ?? "?")); a session is finished once"
                    ),
                    status: .conflict)
            }
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
        engine.removeSessionCap(named: Cap.sessionCapName(id))
        state.sessions.remove(id)
        return await showSession(id)
    }

    /// Ends, as `lost`, every running session whose `spendwall run` process is gone (killed
    /// outright, crashed), so its budget stops holding and its record says how it ended.
    func endLostSessions() async {
        guard let running = try? await state.store.runningSessions() else { return }
        for session in running {
            guard let pid = session.pid, pid > 0, Glibc.kill(pid, 0) == -1, errno == ESRCH else { continue }
            let ending = SessionEnding(
                endedMS: clock.nowMS(), exitCode: nil, exitSignal: nil, stopReason: .lost, resumeCommand: nil)
            guard (try? await state.store.finishSession(id: session.id, ending: ending, artifacts: [])) == true else {
                continue
            }
            engine.removeSessionCap(named: Cap.sessionCapName(session.id))
            state.sessions.remove(session.id)
            logger.notice(
                "session \(session.id) ended as lost: its `spendwall run` (pid \(pid)) is gone without ending it")
        }
    }

    static func unknownSession(_ id: String) -> APIResponse {
        .error(
            SpendwallError(.notFound, "no session \"\(id)\"; `spendwall sessions ls` lists the sessions there are"),
            status: .notFound)
    }

    // MARK: reads

    func listSessions(_ request: APIRequest) async -> APIResponse {
        let limitText = request.query["limit"] ?? "50"
        guard let limit = Int(limitText), (1...1000).contains(limit) else {
            return .badRequest("limit must be a whole number from 1 to 1000, not \"\(limitText)\"")
        }
        do {
            var sessions: [SessionJSON] = []
            for record in try await state.store.sessions(limit: limit) {
                let spend = try await state.store.sessionSpend(id: record.id)
                sessions.append(SessionJSON(record, spend: Self.totals(spend.total)))
            }
            return .json(SessionsAnswer(sessions: sessions))
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
    }

    func showSession(_ id: String) async -> APIResponse {
        do {
            guard let record = try await state.store.session(id: id) else { return Self.unknownSession(id) }
            let spend = try await state.store.sessionSpend(id: id)
            let artifacts = try await state.store.sessionArtifacts(id: id, withContent: false)
            var changed: [String]?
            if artifacts.contains(where: { $0.kind == "git_status" }),
                let status = try await state.store.sessionArtifacts(id: id, withContent: true).first(where: {
                    $0.kind == "git_status"
                })
            {
                changed = String(decoding: status.content, as: UTF8.self).split(separator: "\n").map(String.init)
            }
            return .json(
                SessionShowAnswer(
                    session: SessionJSON(record, spend: Self.totals(spend.total)),
                    by_model: spend.byModel.map { entry in
                        let t = entry.totals
                        return SessionModelJSON(
                            model: entry.model, calls: t.calls, input_tokens: t.usage.inputTokens,
                            output_tokens: t.usage.outputTokens, cache_read_tokens: t.usage.cacheReadTokens,
                            cache_write_tokens: t.usage.cacheWriteTokens, reasoning_tokens: t.usage.reasoningTokens,
                            cost_nanousd: t.costNanoUSD)
                    },
                    artifacts: artifacts.map {
                        SessionArtifactJSON(
                            kind: $0.kind, size: $0.size, truncated: $0.truncated, created_ms: $0.createdMS)
                    },
                    changed_files: changed, cap: record.isRunning ? sessionCapStatus(id) : nil))
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
    }

    func sessionArtifact(_ id: String, kind: String) async -> APIResponse {
        do {
            guard try await state.store.session(id: id) != nil else { return Self.unknownSession(id) }
            guard
                let artifact = try await state.store.sessionArtifacts(id: id, withContent: true).first(where: {
                    $0.kind == kind
                })
            else {
                return .error(
                    SpendwallError(.notFound, "session \(id) has no \(kind) artifact"), status: .notFound)
            }
            return .json(
                SessionArtifactJSON(
                    kind: artifact.kind, size: artifact.size, truncated: artifact.truncated,
                    created_ms: artifact.createdMS, content_base64: Data(artifact.content).base64EncodedString()))
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
    }

    // MARK: stopping

    /// Tells `spendwall run` to stop a session whose own cap refused a call.
    func sessionBlocked(_ status: CapStatus, reason: String) {
        guard let id = Cap.sessionID(ofCapName: status.cap.name), state.sessions.entry(id) != nil else { return }
        events.publish("SessionStop", SessionStopEvent(session: id, reason: "budget_exceeded", message: reason))
    }

    /// Tells `spendwall run` to stop the running sessions a kill switch covers.
    func sessionsKilled(_ scope: KillScope) {
        for id in state.sessions.covered(by: scope) {
            events.publish(
                "SessionStop",
                SessionStopEvent(
                    session: id, reason: "killed",
                    message:
                        "the \(scope) kill switch is on; turn it off with `spendwall kill\(Self.killFlag(scope)) --off`"
                ))
        }
    }
}
