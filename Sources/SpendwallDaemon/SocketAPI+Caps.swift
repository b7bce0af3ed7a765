import Foundation
import SpendwallConfig
import SpendwallCore
import SpendwallLedger
import Synchronization

/// Editing caps.toml through the API (`PUT` / `DELETE /v1/caps/{name}`), for the panel: the same
/// ``CapsFileEditor`` the CLI's `caps set` / `caps rm` use (comments and other caps stay as
/// written), then a reload so the daemon enforces the change before it answers.
extension SocketAPI {
    /// The body of `PUT /v1/caps/{name}`.
    struct CapBody: Decodable {
        var scope: String
        var window: String
        var limit_usd: Double?
        var limit_tokens: Int64?
        var action: String?
        var warn_at: Double?
        var reserve: String?
    }

    struct CapSavedAnswer: Encodable {
        var name: String
        var saved: Bool
        var caps: Int
    }

    func setCap(_ name: String, _ request: APIRequest) async -> APIResponse {
        let body: CapBody
        switch decode(CapBody.self, request) {
        case .success(let value): body = value
        case .failure(let failure): return failure.response
        }
        guard Self.validCapName(name) else {
            return .badRequest("a cap name is 1 to 64 letters, digits, '-', '_' or '.', not \"\(name)\"")
        }
        guard let scope = CapScope(flag: body.scope) else {
            return .badRequest(
                "scope must be global, agent=A, app=X, session=S, model=M or tag=KEY=VALUE, not \"\(body.scope)\"")
        }
        guard let window = CapWindow(parsing: body.window) else {
            return .badRequest("window must be 1h, 1d, 7d, 30d (rolling) or day, week, month, not \"\(body.window)\"")
        }
        guard body.limit_usd != nil || body.limit_tokens != nil else {
            return .badRequest("give limit_usd and/or limit_tokens")
        }
        var limitNanoUSD: NanoUSD?
        if let dollars = body.limit_usd {
            guard dollars > 0, let nanos = Money.nanos(fromDollars: dollars) else {
                return .badRequest("limit_usd must be a positive number of dollars")
            }
            limitNanoUSD = nanos
        }
        if let tokens = body.limit_tokens, tokens <= 0 { return .badRequest("limit_tokens must be positive") }
        guard let action = CapAction(rawValue: body.action ?? "block") else {
            return .badRequest("action must be block, alert or approve, not \"\(body.action ?? "")\"")
        }
        let warnAt = body.warn_at ?? 0.8
        guard warnAt > 0, warnAt <= 1 else { return .badRequest("warn_at must be above 0 and at most 1") }
        guard let reserve = ReserveMode(rawValue: body.reserve ?? ReserveMode.worstCase.rawValue) else {
            return .badRequest("reserve must be worst_case or expected")
        }
        let cap = Cap(
            name: name, scope: scope, window: window, limitNanoUSD: limitNanoUSD, limitTokens: body.limit_tokens,
            action: action, warnAt: warnAt, reserve: reserve)
        return await editCaps { text in
            try CapsFileEditor.setting(CapsFileEditor.block(for: cap), named: name, in: text)
        } answer: { caps in
            .json(CapSavedAnswer(name: name, saved: true, caps: caps))
        }
    }

    func removeCap(_ name: String) async -> APIResponse {
        await editCaps { text in
            guard let edited = try CapsFileEditor.removing(named: name, in: text) else {
                throw SpendwallError(.notFound, "caps.toml has no cap named \"\(name)\"")
            }
            return edited
        } answer: { caps in
            .json(CapSavedAnswer(name: name, saved: false, caps: caps))
        }
    }

    /// Edits caps.toml (one edit at a time), writes it atomically, and reloads.
    private func editCaps(
        _ edit: (String) throws -> String, answer: (Int) -> APIResponse
    ) async -> APIResponse {
        let path = state.configuration.paths.configFile("caps.toml")
        do {
            try CapsFileLock.lock.withLock { _ in
                let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                let edited = try edit(text)
                let temporary = path + ".tmp-\(getpid())"
                guard
                    FileManager.default.createFile(
                        atPath: temporary, contents: Data(edited.utf8), attributes: [.posixPermissions: 0o600])
                else {
                    throw SpendwallError(.internalError, "cannot write \(temporary)")
                }
                guard rename(temporary, path) == 0 else {
                    unlink(temporary)
                    throw SpendwallError(
                        .internalError, "cannot replace \(path): \(String(cString: strerror(errno)))")
                }
            }
        } catch let error as ConfigError {
            return .error(SpendwallError(.config, error.description), status: .badRequest)
        } catch let error as SpendwallError {
            return .error(error, status: error.code == .notFound ? .notFound : .internalServerError)
        } catch {
            return .error(SpendwallError(.internalError, "\(error)"), status: .internalServerError)
        }
        let response = await reload()
        guard response.status == .ok else { return response }
        return answer(engine.currentCaps.count)
    }

    static func validCapName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64
            && name.unicodeScalars.allSatisfy {
                CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_.".unicodeScalars.contains($0)
            }
    }
}

/// Serializes edits of caps.toml made through the API.
enum CapsFileLock {
    static let lock = Mutex(())
}
