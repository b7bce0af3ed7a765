import Foundation
import SpendwallTestSupport
import Testing

let dollarCapToml = """
    [[cap]]
    name = "one-dollar"
    scope = { global = true }
    window = "1d"
    limit_usd = 1.0
    action = "block"
    """
/// A request that reserves exactly $0.05 on gpt-4o ($10 per million output tokens, no input).
var fiveCentRequest: [String: Any] { ["model": "gpt-4o", "max_tokens": 5000] }

@Suite(.timeLimit(.minutes(2)), .serialized) struct SocketAPITests {
    @Test func healthAnswersAndTheSocketIsPrivate() async throws {
        try await TestDaemon.with { daemon in
            let (status, health) = try await daemon.client.getJSON("/v1/health")
            #expect(status == 200)
            #expect(health["status"] as? String == "ok")
            let components = health["components"] as? [String: [String: Any]]
            #expect(components?["ledger"]?["ok"] as? Bool == true)
            #expect(components?["engine"]?["ok"] as? Bool == true)
            let socketMode =
                try FileManager.default.attributesOfItem(atPath: daemon.socketPath)[.posixPermissions] as? Int
            let dirMode =
                try FileManager.default.attributesOfItem(
                    atPath: (daemon.socketPath as NSString).deletingLastPathComponent)[.posixPermissions] as? Int
            #expect(socketMode == 0o600)
            #expect(dirMode == 0o700)
            let dbMode =
                try FileManager.default.attributesOfItem(
                    atPath: daemon.dataDirectory.appendingPathComponent("spendwall.db").path)[.posixPermissions] as? Int
            #expect(dbMode == 0o600)
        }
    }

    @Test func sixtyFourConcurrentChecksOverTheSocketAdmitExactlyTwenty() async throws {
        try await TestDaemon.with(caps: dollarCapToml) { daemon in
            let client = daemon.client
            let answers = try await withThrowingTaskGroup(of: [String: Any].self) { group in
                for _ in 0..<64 {
                    group.addTask {
                        try await client.post(
                            "/v1/check", ["provider": "openai", "model": "gpt-4o", "request": fiveCentRequest]
                        ).json
                    }
                }
                return try await group.reduce(into: [[String: Any]]()) { $0.append($1) }
            }
            let allowed = answers.filter { $0["decision"] as? String == "allow" }
            #expect(allowed.count == 20)
            #expect(allowed.allSatisfy { int64($0["reserved_nanousd"]) == 50_000_000 })
            let blocked = answers.filter { $0["decision"] as? String == "block" }
            #expect(blocked.count == 44)
            #expect((blocked.first?["error"] as? [String: Any])?["code"] as? String == "cap_exceeded")

            // Reports settle at $0.01 each: $0.80 comes free again, so 16 more fit.
            for answer in allowed {
                let (status, report) = try await client.post(
                    "/v1/report", ["reservation_id": answer["reservation_id"]!, "usage": ["output_tokens": 1000]])
                #expect(status == 200)
                #expect(int64(report["cost_nanousd"]) == 10_000_000)
            }
            var again = 0
            for _ in 0..<64 {
                let (_, json) = try await client.post(
                    "/v1/check", ["provider": "openai", "model": "gpt-4o", "request": fiveCentRequest])
                if json["decision"] as? String == "allow" { again += 1 }
            }
            #expect(again == 16)
            let snapshot = try await client.getJSON("/v1/policy/snapshot").json
            let key = ((snapshot["caps"] as? [[String: Any]])?.first?["keys"] as? [[String: Any]])?.first
            #expect(int64(key?["spent_nanousd"]) == 200_000_000)
            #expect(int64(key?["reserved_nanousd"]) == 800_000_000)
        }
    }

    @Test func reportsAreIdempotentAndCachedTokensPricedAtTheirRates() async throws {
        try await TestDaemon.with { daemon in
            let client = daemon.client
            let check = try await client.post(
                "/v1/check",
                ["provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "request": ["max_tokens": 100]]
            ).json
            let id = try #require(check["reservation_id"] as? String)
            let usage = [
                "input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 5000, "cache_write_tokens": 2000,
            ]
            let first = try await client.post("/v1/report", ["reservation_id": id, "usage": usage])
            // $3/M in, $15/M out, $0.30/M cache read, $3.75/M cache write.
            let expected: Int64 = 3_000_000 + 3_000_000 + 1_500_000 + 7_500_000
            #expect(int64(first.json["cost_nanousd"]) == expected, "\(first.json)")
            let second = try await client.post("/v1/report", ["reservation_id": id, "usage": usage])
            #expect(second.status == 200)
            #expect(second.json["duplicate"] as? Bool == true)
            let rows = try await client.getJSON("/v1/ledger?limit=10").json["rows"] as? [[String: Any]]
            #expect(rows?.count == 1)
            #expect(int64(rows?.first?["cache_write_tokens"]) == 2000)
        }
    }

    @Test func batchReportsAreIdempotentByID() async throws {
        try await TestDaemon.with(caps: dollarCapToml) { daemon in
            let client = daemon.client
            let item: [String: Any] = [
                "id": "spool-1", "provider": "openai", "model": "gpt-4o", "agent": "offline",
                "usage": ["input_tokens": 100_000, "output_tokens": 0],
                "time_ms": Int(Date().timeIntervalSince1970 * 1000) - 5000,
            ]
            let bad: [String: Any] = ["id": "spool-2", "usage": ["input_tokens": 1]]
            let first =
                try await client.post("/v1/reports", ["reports": [item, bad]]).json["results"] as? [[String: Any]]
            #expect(first?.map { $0["result"] as? String } == ["recorded", "rejected"])
            let again = try await client.post("/v1/reports", ["reports": [item]]).json["results"] as? [[String: Any]]
            #expect(again?.first?["result"] as? String == "duplicate")
            let rows = try await client.getJSON("/v1/ledger?limit=10").json["rows"] as? [[String: Any]]
            #expect(rows?.count == 1)
            // The replayed spend counts against the cap: $0.25 of $1.00.
            let snapshot = try await client.getJSON("/v1/policy/snapshot").json
            let key = ((snapshot["caps"] as? [[String: Any]])?.first?["keys"] as? [[String: Any]])?.first
            #expect(int64(key?["spent_nanousd"]) == 250_000_000)
        }
    }

    @Test func badInputGetsStructuredErrorsAndTheDaemonKeepsServing() async throws {
        try await TestDaemon.with { daemon in
            let client = daemon.client
            func errorCode(_ path: String, _ body: String) async throws -> (Int, String?, String?) {
                let response = try await client.post(path, json: Data(body.utf8))
                return (response.status, response.error?.code, response.error?.message)
            }
            let cases: [(String, String, Int, String, String)] = [
                ("/v1/check", "{not json", 400, "bad_request", "not valid JSON"),
                ("/v1/check", "", 400, "bad_request", "empty"),
                ("/v1/check", #"{"provider": 5, "model": "gpt-4o"}"#, 400, "bad_request", "provider"),
                ("/v1/check", #"{"provider": "openai"}"#, 400, "bad_request", "model"),
                ("/v1/check", #"{"provider": "gemini", "model": "x"}"#, 400, "bad_request", "provider"),
                ("/v1/check", #"{"provider": "openai", "model": "m", "tags": {"a": 1}}"#, 400, "bad_request", "tags"),
                ("/v1/report", #"{"reservation_id": "r_nope", "usage": {}}"#, 404, "unknown_reservation", "r_nope"),
                (
                    "/v1/report", #"{"reservation_id": "r_x", "usage": {"input_tokens": -5}}"#, 400, "bad_request",
                    "negative"
                ),
                (
                    "/v1/report", #"{"reservation_id": "r_x", "usage": {"input_tokens": "many"}}"#, 400, "bad_request",
                    "input_tokens"
                ),
                ("/v1/report", #"{"reservation_id": "r_x", "outcome": "great"}"#, 400, "bad_request", "outcome"),
                ("/v1/reports", #"{"reports": "no"}"#, 400, "bad_request", "reports"),
                ("/v1/nowhere", "{}", 404, "not_found", "no endpoint"),
            ]
            for (path, body, status, code, fragment) in cases {
                let (gotStatus, gotCode, message) = try await errorCode(path, body)
                #expect(gotStatus == status, "\(path) \(body)")
                #expect(gotCode == code, "\(path) \(body)")
                #expect(message?.contains(fragment) == true, "\(path) \(body): \(message ?? "nil")")
            }
            let wrongMethod = try await client.get("/v1/check")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.error?.code == "method_not_allowed")
            for request in ["PUT /v1/kill", "POST /v1/events", "POST /v1/approvals", "GET /v1/approvals/ap_1/resolve"] {
                let socket = try RawSocket(path: daemon.socketPath)
                #expect(socket.send("\(request) HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
                let answer = try await offload { socket.readAll() }
                #expect(answer.hasPrefix("HTTP/1.1 405"), "\(request): \(answer)")
                #expect(answer.contains(#""code":"method_not_allowed""#), "\(request): \(answer)")
            }
            #expect(try await client.get("/v1/health").status == 200)
        }
    }

    @Test func aTenMegabyteBodyIsRefusedWith413() async throws {
        try await TestDaemon.with { daemon in
            let socket = try RawSocket(path: daemon.socketPath)
            let body = [UInt8](repeating: UInt8(ascii: "a"), count: 10 << 20)
            socket.send(
                "POST /v1/check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
            )
            socket.send(body)
            let answer = try await offload { socket.readAll() }
            #expect(answer.hasPrefix("HTTP/1.1 413"))
            #expect(answer.contains(#""code":"payload_too_large""#))
            #expect(try await daemon.client.get("/v1/health").status == 200)
        }
    }

    @Test func aHalfWrittenRequestGetsAStructuredErrorAndNothingElseStops() async throws {
        try await TestDaemon.with { daemon in
            let socket = try RawSocket(path: daemon.socketPath)
            socket.send("POST /v1/check HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"provider\":")
            socket.shutdownWrite()
            let answer = try await offload { socket.readAll() }
            #expect(answer.hasPrefix("HTTP/1.1 400"))
            #expect(answer.contains(#""code":"bad_request""#))
            let garbage = try RawSocket(path: daemon.socketPath)
            garbage.send("\u{1}\u{2}NOT HTTP AT ALL\r\n\r\n")
            #expect(try await offload { garbage.readAll() }.contains(#""code":"bad_request""#))
            #expect(try await daemon.client.get("/v1/health").status == 200)
        }
    }

    @Test func aBrokenCapsFileIsReportedWithFileAndLineAndTheOldCapsKeepHolding() async throws {
        try await TestDaemon.with(caps: dollarCapToml) { daemon in
            try daemon.writeConfig("caps.toml", dollarCapToml + "\n\n[[cap]]\nname = \"broken\nwindow = 1d\n")
            let response = try await daemon.client.post("/v1/reload", json: Data("{}".utf8))
            #expect(response.status == 400)
            let error = response.json?["error"] as? [String: Any]
            #expect(error?["code"] as? String == "config_error")
            #expect(error?["file"] as? String == "caps.toml")
            #expect(int64(error?["line"]) == 9)
            let cli = try await daemon.cli("reload")
            #expect(cli.status == 1)
            #expect(cli.err.contains("caps.toml:9"))
            // The one-dollar cap still holds.
            let snapshot = try await daemon.client.getJSON("/v1/policy/snapshot").json
            #expect((snapshot["caps"] as? [[String: Any]])?.first?["name"] as? String == "one-dollar")
            let check = try await daemon.client.post(
                "/v1/check", ["provider": "openai", "model": "gpt-4o", "request": ["max_tokens": 200_000]]
            ).json
            #expect(check["decision"] as? String == "block")
            // Fixed, it reloads.
            try daemon.writeConfig("caps.toml", "")
            #expect(try await daemon.client.post("/v1/reload", json: Data("{}".utf8)).status == 200)
        }
    }
}
