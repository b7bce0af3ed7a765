import Foundation
import SpendwallTestSupport
import Testing

@Suite(.timeLimit(.minutes(2))) struct RedactionTests {
    @Test func redactedTagValuesNeverReachTheDatabaseButStillGroup() async throws {
        let settings = #"""
            [privacy]
            redact = ["customer_email"]
            redact_values = "\\d{3}-\\d{2}-\\d{4}"
            """#
        let daemon = try TestDaemon()
        defer { daemon.stop(); daemon.cleanUp() }
        try daemon.writeConfig("spendwall.toml", settings)
        try await daemon.start()
        let client = daemon.client
        let secrets = ["alice@example.com", "123-45-6789"]
        let tags = ["customer_email": secrets[0], "note": "ssn \(secrets[1])", "team": "core"]
        for _ in 0..<2 {
            let check = try await client.post(
                "/v1/check", ["provider": "openai", "model": "gpt-4o", "tags": tags, "request": ["max_tokens": 5]]
            ).json
            _ = try await client.post(
                "/v1/report", ["reservation_id": check["reservation_id"]!, "usage": ["output_tokens": 5]])
        }
        let batch = try await client.post(
            "/v1/reports",
            [
                "reports": [
                    [
                        "id": "spooled-1", "provider": "openai", "model": "gpt-4o", "tags": tags,
                        "usage": ["output_tokens": 1],
                    ]
                ]
            ])
        #expect(batch.status == 200)

        let rows = try await client.getJSON("/v1/ledger?limit=10").json["rows"] as? [[String: Any]] ?? []
        let stored = rows.compactMap { $0["tags"] as? [String: String] }
        #expect(stored.count == 3)
        #expect(Set(stored.compactMap { $0["customer_email"] }).count == 1, "the same value hashes the same")
        #expect(stored.allSatisfy { $0["customer_email"]?.hasPrefix("redacted:") == true && $0["team"] == "core" })
        #expect(stored.allSatisfy { $0["note"]?.hasPrefix("redacted:") == true })
        let byTag = try await daemon.cli("ls", "--by", "tag", "--json")
        #expect(byTag.out.contains("customer_email=redacted:"), "\(byTag.out)")

        try await daemon.stopped()
        let files = try FileManager.default.contentsOfDirectory(atPath: daemon.dataDirectory.path)
        #expect(files.contains("spendwall.db"))
        for file in files + ["../daemon.log"] {
            let data =
                FileManager.default.contents(atPath: daemon.dataDirectory.appendingPathComponent(file).path) ?? Data()
            for secret in secrets {
                #expect(data.range(of: Data(secret.utf8)) == nil, "\(secret) found in \(file)")
            }
        }
        let keyMode =
            try FileManager.default.attributesOfItem(
                atPath: daemon.dataDirectory.appendingPathComponent("redact.key").path)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
    }

    @Test func aBadRedactionPatternIsRefusedWithItsLine() async throws {
        let daemon = try TestDaemon()
        defer { daemon.cleanUp() }
        try daemon.writeConfig("spendwall.toml", "[privacy]\nredact = [\"a\"]\nredact_values = \"(unclosed\"\n")
        let result = try await TestDaemon.run(TestDaemon.binaryPath, ["daemon"], environment: daemon.environment)
        #expect(result.status == 1)
        #expect(result.err.contains("spendwall.toml:3"), "\(result.err)")
    }
}
