import Crypto
import Foundation

/// Who may use the panel, decided from a request's headers alone (no I/O, so it tests fast).
///
/// The panel is a web page on a loopback port, so any web page the user visits could try to
/// reach it: a cross-site form or `fetch`, or a DNS-rebinding page whose own name resolves to
/// 127.0.0.1. Four checks stop them:
/// - `Host` must be a loopback name (`127.0.0.1`, `localhost`, `[::1]`, with or without a port):
///   a rebinding page's requests carry its own name.
/// - `Origin`, when present, must be the panel's own (`http://` + the `Host`).
/// - every `/panel/api/*` request needs the session cookie (HttpOnly, SameSite=Strict), set
///   only by a one-time login link;
/// - a request that changes anything (not GET or HEAD) also needs the CSRF token in the
///   `x-csrf-token` header, which only the panel's own scripts can read (from
///   `/panel/api/session`, itself behind the cookie).
public struct PanelAccess: Sendable {
    /// Why a request is refused: a stable code and a message that says what to do.
    public struct Refusal: Error, Sendable, Equatable {
        public var status: Int
        public var code: String
        public var message: String
    }

    /// The session secret (the token in `panel.token`).
    public let token: String
    /// The name of the session cookie; it carries the port, so two daemons' panels on one
    /// machine (cookies ignore ports) do not log each other out.
    public let cookieName: String

    public init(token: String, port: Int) {
        self.token = token
        self.cookieName = "spendwall_panel_\(port)"
    }

    /// The CSRF token: derived from the session secret, so it survives restarts with it.
    public var csrfToken: String {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("spendwall-panel-csrf".utf8), using: SymmetricKey(data: Data(token.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    /// The `Set-Cookie` value that logs a browser in.
    public var loginCookie: String {
        "\(cookieName)=\(token); Path=/panel/; HttpOnly; SameSite=Strict; Max-Age=2592000"
    }

    /// The `Set-Cookie` value that logs a browser out.
    public var logoutCookie: String {
        "\(cookieName)=; Path=/panel/; HttpOnly; SameSite=Strict; Max-Age=0"
    }

    /// Checks the `Host` and `Origin` headers: every `/panel/` request, logged in or not.
    public func checkSite(host: String?, origin: String?) -> Refusal? {
        guard let host, Self.isLoopbackHost(host) else {
            return Refusal(
                status: 403, code: "forbidden_host",
                message:
                    "the panel answers only to a loopback Host (127.0.0.1, localhost or [::1]), not \(host.map { "\"\($0)\"" } ?? "none"); open the link `spendwall panel` prints"
            )
        }
        if let origin, origin != "http://" + host.lowercased() {
            return Refusal(
                status: 403, code: "forbidden_origin",
                message: "requests to the panel must come from the panel itself (Origin http://\(host)), not \(origin)")
        }
        return nil
    }

    /// Checks the session cookie, and the CSRF token for a request that changes anything.
    public func checkSession(cookieHeader: String?, csrfHeader: String?, changesState: Bool) -> Refusal? {
        guard let presented = Self.cookie(named: cookieName, in: cookieHeader),
            Self.constantTimeEqual(presented, token)
        else {
            return Refusal(
                status: 401, code: "unauthorized",
                message: "not logged in to the panel: run `spendwall panel` and open the login link it prints")
        }
        if changesState {
            guard let csrfHeader, Self.constantTimeEqual(csrfHeader, csrfToken) else {
                return Refusal(
                    status: 403, code: "csrf_failed",
                    message:
                        "this request changes something and needs the panel's CSRF token in x-csrf-token; reload the page"
                )
            }
        }
        return nil
    }

    /// Whether a `Host` header names this machine's loopback interface.
    public static func isLoopbackHost(_ host: String) -> Bool {
        let name: Substring
        let lowered = host.lowercased()
        if lowered.hasPrefix("[") {
            guard let close = lowered.firstIndex(of: "]") else { return false }
            name = lowered[lowered.index(after: lowered.startIndex)..<close]
            let rest = lowered[lowered.index(after: close)...]
            guard rest.isEmpty || Self.isPort(rest) else { return false }
            return name == "::1"
        }
        let parts = lowered.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 2 { guard Self.isPort(":" + parts[1]) else { return false } }
        name = parts[0]
        if name == "localhost" { return true }
        let octets = name.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ UInt8($0) != nil && $0.count <= 3 }) else { return false }
        return octets[0] == "127"
    }

    private static func isPort(_ text: some StringProtocol) -> Bool {
        guard text.first == ":" else { return false }
        let digits = text.dropFirst()
        return !digits.isEmpty && digits.count <= 5 && digits.allSatisfy(\.isASCII) && UInt16(digits) != nil
    }

    /// The value of one cookie in a `Cookie` header.
    public static func cookie(named name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { continue }
            if kv[0].trimmingCharacters(in: .whitespaces) == name {
                return kv[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in x.indices { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}
