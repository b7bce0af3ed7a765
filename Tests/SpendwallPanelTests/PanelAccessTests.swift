import Foundation
import SpendwallPanel
import Testing

@Suite struct PanelAccessTests {
    let access = PanelAccess(token: String(repeating: "ab", count: 32), port: 8787)

    @Test(arguments: [
        "127.0.0.1", "127.0.0.1:8787", "localhost", "LOCALHOST:8787", "[::1]", "[::1]:8787", "127.1.2.3:80",
    ])
    func loopbackHostsAreServed(host: String) {
        #expect(access.checkSite(host: host, origin: nil) == nil)
    }

    @Test(arguments: [
        "evil.example", "evil.example:8787", "127.0.0.1.evil.example", "localhost.evil.example", "10.0.0.1:8787",
        "[::2]:8787", "[::1]x", "127.0.0.1:", "127.0.0.1:99999", "0.0.0.0:8787", "",
    ])
    func otherHostsAreRefused(host: String) {
        #expect(access.checkSite(host: host, origin: nil)?.code == "forbidden_host")
    }

    @Test func aMissingHostIsRefused() {
        #expect(access.checkSite(host: nil, origin: nil)?.status == 403)
    }

    @Test func originMustBeThePanelsOwn() {
        #expect(access.checkSite(host: "127.0.0.1:8787", origin: "http://127.0.0.1:8787") == nil)
        #expect(access.checkSite(host: "127.0.0.1:8787", origin: "https://evil.example")?.code == "forbidden_origin")
        #expect(access.checkSite(host: "127.0.0.1:8787", origin: "http://127.0.0.1:9999")?.code == "forbidden_origin")
        #expect(access.checkSite(host: "127.0.0.1:8787", origin: "null")?.code == "forbidden_origin")
    }

    @Test func apiNeedsTheCookie() {
        let cookie = "other=1; \(access.cookieName)=\(access.token)"
        #expect(access.checkSession(cookieHeader: cookie, csrfHeader: nil, changesState: false) == nil)
        #expect(access.checkSession(cookieHeader: nil, csrfHeader: nil, changesState: false)?.code == "unauthorized")
        #expect(
            access.checkSession(cookieHeader: "\(access.cookieName)=wrong", csrfHeader: nil, changesState: false)?
                .status
                == 401)
        // another daemon's panel (another port) has another cookie
        let other = PanelAccess(token: access.token, port: 9999)
        #expect(other.checkSession(cookieHeader: cookie, csrfHeader: nil, changesState: false)?.code == "unauthorized")
    }

    @Test func changesNeedTheCSRFToken() {
        let cookie = "\(access.cookieName)=\(access.token)"
        #expect(access.checkSession(cookieHeader: cookie, csrfHeader: nil, changesState: true)?.code == "csrf_failed")
        #expect(access.checkSession(cookieHeader: cookie, csrfHeader: "x", changesState: true)?.code == "csrf_failed")
        #expect(access.checkSession(cookieHeader: cookie, csrfHeader: access.csrfToken, changesState: true) == nil)
        #expect(access.csrfToken != access.token && access.csrfToken.count == 64)
    }

    @Test func theLoginCookieIsHttpOnlyAndStrict() {
        #expect(access.loginCookie.contains("HttpOnly"))
        #expect(access.loginCookie.contains("SameSite=Strict"))
        #expect(access.loginCookie.contains("Path=/panel/"))
    }

    @Test func loginCodesWorkOnceAndExpire() {
        let codes = PanelLoginCodes(lifetimeMS: 1000)
        let (code, expires) = codes.issue(nowMS: 10_000)
        #expect(expires == 11_000)
        #expect(!codes.redeem("nope", nowMS: 10_001))
        #expect(codes.redeem(code, nowMS: 10_001))
        #expect(!codes.redeem(code, nowMS: 10_002))
        let late = codes.issue(nowMS: 20_000).code
        #expect(!codes.redeem(late, nowMS: 21_000))
    }

    @Test func theTokenFileIsPrivateAndKept() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("panel-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/panel.token"
        let token = try PanelToken.loadOrCreate(path: path)
        #expect(token.count == 64)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try PanelToken.loadOrCreate(path: path) == token)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(try PanelToken.loadOrCreate(path: path) == token)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
    }

    @Test func everyPageIsEmbedded() {
        for name in ["index.html", "panel.js", "panel.css", "favicon.svg"] {
            #expect(PanelAssets.asset(at: "/panel/\(name)") != nil, "\(name)")
        }
        #expect(PanelAssets.asset(at: "/panel/")?.contentType == "text/html; charset=utf-8")
        #expect(PanelAssets.asset(at: "/panel/../etc/passwd") == nil)
    }
}
