import Foundation
import SpendwallClient
import SpendwallTestSupport
import Testing

/// `/metrics` on the loopback listener. (The Python suite parses the same text with
/// prometheus_client's parser: tests/daemon/test_metrics.py.)
@Suite(.timeLimit(.minutes(2)), .serialized) struct MetricsTests {
    func curl(_ arguments: String...) async throws -> String {
        let result = try await TestDaemon.run("/usr/bin/curl", ["-s", "--max-time", "10"] + arguments)
        #expect(result.status == 0, "curl \(arguments): \(result.err)")
        return result.out
    }

    @Test func spendCallsAndDecisionsAreCountedAsTheLedgerHasThem() async throws {
        try await TestDaemon.with(caps: dollarCapToml) { daemon in
            let client = daemon.client
            let address = try await daemon.loopbackAddress()
            #expect(address.hasPrefix("127.0.0.1:"))
            // Two calls settled at $0.0125 each (1,000 input + 1,000 output tokens of gpt-4o).
            for _ in 0..<2 {
                let check = try await client.post("/v1/check", checkA)
                let id = check.json["reservation_id"] as? String ?? ""
                let report = try await client.post(
                    "/v1/report", ["reservation_id": id, "usage": ["input_tokens": 1000, "output_tokens": 1000]])
                #expect(int64(report.json["cost_nanousd"]) == 12_500_000)
            }
            // Fill the dollar cap with reservations, so the next check is blocked.
            var held = 0
            while try await client.post("/v1/check", checkB).json["decision"] as? String == "allow" { held += 1 }
            let text = try await curl("http://\(address)/metrics")
            #expect(text.contains("# TYPE spendwall_spend_nanousd_total counter"), "\(text)")
            let spend = text.split(separator: "\n").filter { $0.hasPrefix("spendwall_spend_nanousd_total{app=") }
            #expect(spend.count == 1 && spend[0].hasSuffix(#",agent="a",model="gpt-4o"} 25000000"#), "\(text)")
            #expect(text.contains(#"agent="a",model="gpt-4o",outcome="ok"} 2"#), "\(text)")
            #expect(text.contains(#"spendwall_decisions_total{decision="allow"} \#(2 + held)"#), "\(text)")
            #expect(text.contains(#"spendwall_decisions_total{decision="block"} 1"#), "\(text)")
            #expect(text.contains("spendwall_reservations_in_flight \(held).0"), "\(text)")
            #expect(text.contains("spendwall_check_duration_seconds_count \(3 + held)"), "\(text)")
            #expect(text.contains("# TYPE spendwall_ledger_write_duration_seconds histogram"), "\(text)")
            // Wrong paths and methods get the structured error.
            let missing = try await curl("-w", "\n%{http_code}", "http://\(address)/nope")
            #expect(missing.hasSuffix("\n404"), "\(missing)")
            #expect(missing.contains(#""code":"not_found""#))
            let post = try await curl("-w", "\n%{http_code}", "-X", "POST", "http://\(address)/metrics")
            #expect(post.hasSuffix("\n405"), "\(post)")
        }
    }

    @Test func aTakenPortLeavesTheSocketAPIServingAndHealthSaysWhy() async throws {
        let first = try TestDaemon()
        defer { first.stop(); first.cleanUp() }
        try await first.start()
        let taken = try await first.loopbackAddress()
        let second = try TestDaemon()
        defer { second.stop(); second.cleanUp() }
        try await second.start(extraEnvironment: ["SPENDWALL_PROXY_ADDR": taken])
        let health = try await second.client.getJSON("/v1/health").json
        #expect(health["status"] as? String == "degraded")
        let loopback = (health["components"] as? [String: Any])?["loopback"] as? [String: Any]
        #expect(loopback?["ok"] as? Bool == false)
        let reason = (loopback?["error"] as? String) ?? ""
        #expect(reason.contains("cannot listen on \(taken)"), "\(health)")
        #expect(health["loopback"] == nil)
        #expect(try await second.client.post("/v1/check", checkA).json["decision"] as? String == "allow")
        let doctor = try await second.cli("doctor")
        #expect(doctor.status == 1, "\(doctor.out)")
        #expect(doctor.out.contains("cannot listen on \(taken)"), "\(doctor.out)")
    }

    @Test func aListenAddressOffLoopbackIsAConfigurationError() async throws {
        let daemon = try TestDaemon()
        defer { daemon.stop(); daemon.cleanUp() }
        try daemon.writeConfig("spendwall.toml", "[proxy]\nlisten = \"0.0.0.0:8787\"\n")
        let run = try await daemon.cli("daemon")
        #expect(run.status != 0)
        #expect(run.err.contains("spendwall.toml:2: listen:"), "\(run.err)")
        #expect(run.err.contains("not a loopback address"), "\(run.err)")
    }
}
