import Foundation
import NIOCore
import NIOHTTP1
import SpendwallCore
import SpendwallPanel

/// The panel on the loopback listener (`/panel/`): its pages, the one-time login link, and
/// `/panel/api/*` — a thin authenticated layer over the socket API's own handlers (each API
/// route is a socket API route under another name; nothing here reads the ledger or the
/// engine by itself).
///
/// Every `/panel/` request must carry a loopback `Host` and, when it has an `Origin`, the
/// panel's own; every API request needs the session cookie and, when it changes anything, the
/// CSRF token (``PanelAccess``).
struct PanelServer: Sendable {
    typealias Outbound = NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>

    let api: SocketAPI
    let token: String

    /// Headers on every panel answer: no framing, no sniffing, no referrer (the login link
    /// carries a code), scripts and styles from the panel only.
    static let securityHeaders: [(String, String)] = [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ]

    /// The socket API routes the panel may use, by method and panel path (after `/panel/api`).
    static func socketRoute(_ method: HTTPMethod, _ path: Substring) -> String? {
        switch (method, path) {
        case (.GET, "/health"), (.GET, "/spend"), (.GET, "/spend/series"), (.GET, "/ledger"), (.GET, "/kill"),
            (.POST, "/kill"), (.GET, "/approvals"), (.GET, "/events"), (.GET, "/sessions"), (.GET, "/reconcile"):
            return "/v1" + path
        case (.GET, _) where path.hasPrefix("/sessions/"):
            return isSessionRead(path.dropFirst("/sessions/".count)) ? "/v1" + path : nil
        case (.GET, "/snapshot"): return "/v1/policy/snapshot"
        case (.POST, _) where path.hasPrefix("/approvals/") && path.hasSuffix("/resolve"): return "/v1" + path
        case (.PUT, _) where path.hasPrefix("/caps/"), (.DELETE, _) where path.hasPrefix("/caps/"):
            return "/v1" + path
        default: return nil
        }
    }

    /// The session reads the panel shows: one session (`ID`) and its git snapshot
    /// (`ID/artifacts/git_diff`, `ID/artifacts/git_status`). Not its terminal output, and nothing
    /// that starts or finishes one (stopping a session is the kill switch with its scope).
    static func isSessionRead(_ rest: Substring) -> Bool {
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard let id = parts.first, !id.isEmpty else { return false }
        switch parts.count {
        case 1: return true
        case 3: return parts[1] == "artifacts" && (parts[2] == "git_diff" || parts[2] == "git_status")
        default: return false
        }
    }

    func respond(
        to head: HTTPRequestHead, path: String, body: ByteBuffer?, channel: any Channel, peer: PeerIdentity,
        outbound: Outbound
    ) async throws -> Bool {
        let access = PanelAccess(token: token, port: channel.localAddress?.port ?? 0)
        if let refusal = access.checkSite(
            host: head.headers.first(name: "host"), origin: head.headers.first(name: "origin"))
        {
            return try await write(.refusal(refusal), head: head, to: outbound)
        }
        if path == "/panel" {
            return try await write(.redirect("/panel/"), head: head, to: outbound)
        }
        if path == "/panel/login" {
            return try await login(head, access: access, outbound: outbound)
        }
        guard path.hasPrefix("/panel/api/") else {
            guard head.method == .GET || head.method == .HEAD else {
                return try await write(
                    .error(SpendwallError(.methodNotAllowed, "\(path) takes GET"), status: .methodNotAllowed),
                    head: head, to: outbound)
            }
            guard let asset = PanelAssets.asset(at: path) else {
                return try await write(
                    .error(SpendwallError(.notFound, "no panel page \(path); open /panel/"), status: .notFound),
                    head: head, to: outbound)
            }
            return try await write(
                LoopbackResponse(status: .ok, contentType: asset.contentType, body: asset.body), head: head,
                to: outbound)
        }
        let changesState = head.method != .GET && head.method != .HEAD
        if let refusal = access.checkSession(
            cookieHeader: head.headers[canonicalForm: "cookie"].joined(separator: "; "),
            csrfHeader: head.headers.first(name: "x-csrf-token"), changesState: changesState)
        {
            return try await write(.refusal(refusal), head: head, to: outbound)
        }
        guard let body else {
            return try await write(
                .error(SpendwallError(.payloadTooLarge, "the request body is too large"), status: .payloadTooLarge),
                head: head, to: outbound, keepAlive: false)
        }
        let apiPath = path.dropFirst("/panel/api".count)
        switch (head.method, apiPath) {
        case (.GET, "/session"):
            return try await write(
                .json(.json(SessionAnswer(csrf: access.csrfToken, version: DaemonState.version))), head: head,
                to: outbound)
        case (.POST, "/logout"):
            var response = LoopbackResponse.json(.json(["logged_out": true]))
            response.headers.append(("set-cookie", access.logoutCookie))
            return try await write(response, head: head, to: outbound)
        default: break
        }
        guard let route = Self.socketRoute(head.method, apiPath) else {
            return try await write(
                .error(
                    SpendwallError(
                        .notFound, "no panel API \(head.method) \(path); see docs/socket-api.md (the panel)"),
                    status: .notFound),
                head: head, to: outbound)
        }
        var request = APIRequest(head: head, body: body)
        request.path = route
        switch api.reply(to: request, peer: peer) {
        case .now(let response): return try await write(.json(response), head: head, to: outbound)
        case .later(let work): return try await write(.json(await work()), head: head, to: outbound)
        case .committed:
            return try await write(
                .error(SpendwallError(.internalError, "not a panel route"), status: .internalServerError), head: head,
                to: outbound)
        case .subscribe(let kinds):
            try await stream(kinds: kinds, head: head, channel: channel, outbound: outbound)
            return false
        }
    }

    struct SessionAnswer: Encodable {
        var csrf: String
        var version: String
    }

    /// `GET /panel/login?code=…`: a one-time code from `spendwall panel` sets the session cookie.
    private func login(_ head: HTTPRequestHead, access: PanelAccess, outbound: Outbound) async throws -> Bool {
        let request = APIRequest(head: head, body: ByteBuffer())
        guard head.method == .GET, let code = request.query["code"],
            api.panelLogins.redeem(code, nowMS: api.clock.nowMS())
        else {
            let page = """
                <!doctype html><meta charset="utf-8"><title>Spendwall panel</title>
                <h1>This login link cannot be used</h1>
                <p>A login link works once and for five minutes. Run <code>spendwall panel</code> for a new one.</p>
                """
            return try await write(
                LoopbackResponse(
                    status: .unauthorized, contentType: "text/html; charset=utf-8", body: Array(page.utf8)),
                head: head, to: outbound)
        }
        var response = LoopbackResponse.redirect("/panel/")
        response.headers.append(("set-cookie", access.loginCookie))
        return try await write(response, head: head, to: outbound)
    }

    /// The live event stream, as `/v1/events` sends it, for as long as the page reads it.
    private func stream(kinds: Set<String>?, head: HTTPRequestHead, channel: any Channel, outbound: Outbound)
        async throws
    {
        let feed = api.events.feed(kinds: kinds)
        channel.closeFuture.whenComplete { _ in feed.cancel() }
        defer { feed.cancel() }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/event-stream")
        for (name, value) in Self.securityHeaders { headers.add(name: name, value: value) }
        headers.add(name: "connection", value: "close")
        try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers)))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while true {
                    try await Task.sleep(for: .seconds(15))
                    feed.keepalive()
                }
            }
            group.addTask {
                for await frame in feed.frames {
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: frame))))
                    feed.written(frame.count)
                }
                try? await outbound.write(.end(nil))
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    private func write(
        _ response: LoopbackResponse, head: HTTPRequestHead, to outbound: Outbound, keepAlive: Bool = true
    ) async throws -> Bool {
        var response = response
        response.headers += Self.securityHeaders
        return try await LoopbackServer.write(response, head: head, to: outbound, keepAlive: keepAlive)
    }
}

extension LoopbackResponse {
    static func refusal(_ refusal: PanelAccess.Refusal) -> LoopbackResponse {
        let status = HTTPResponseStatus(statusCode: refusal.status)
        let body = ErrorBody(error: ErrorJSON(code: refusal.code, message: refusal.message))
        return LoopbackResponse(status: status, contentType: "application/json", body: body.jsonBytes)
    }

    static func redirect(_ location: String) -> LoopbackResponse {
        LoopbackResponse(
            status: .seeOther, contentType: "text/plain; charset=utf-8", body: Array("see \(location)\n".utf8),
            headers: [("location", location)])
    }
}
