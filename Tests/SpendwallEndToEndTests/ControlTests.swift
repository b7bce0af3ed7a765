import Foundation
import SpendwallClient
import SpendwallTestSupport
import Synchronization
import Testing

/// Collects the events a subscriber receives, from a background task.
final class EventLog: Sendable {
    private let events = Mutex<[(kind: String, json: [String: Any])]>([])
    private let counts = Mutex<[String: Int]>([:])
    private let opened = Mutex(false)

    var isOpen: Bool { opened.withLock { $0 } }
    var kinds: [String] { events.withLock { $0.map(\.kind) } }
    func count(_ kind: String) -> Int { counts.withLock { $0[kind] ?? 0 } }
    func all(_ kind: String) -> [[String: Any]] { events.withLock { $0.filter { $0.kind == kind }.map(\.json) } }

    func follow(_ client: DaemonClient, kinds: [String]? = nil) async throws {
        try await client.events(kinds: kinds, onOpen: { self.opened.withLock { $0 = true } }) { event in
            let json = (try? JSONSerialization.jsonObject(with: event.json)) as? [String: Any] ?? [:]
            nonisolated(unsafe) let unsafeJSON = json
            self.events.withLock { $0.append((event.kind, unsafeJSON)) }
            self.counts.withLock { $0[event.kind, default: 0] += 1 }
            return true
        }
    }

    /// Waits until `condition` holds (or 10 s pass).
    func wait(until condition: () -> Bool) async throws {
        for _ in 0..<200 where !condition() { try await Task.sleep(for: .milliseconds(50)) }
    }
}

let checkA: [String: Any] = ["provider": "openai", "model": "gpt-4o", "agent": "a", "request": fiveCentRequest]
let checkB: [String: Any] = ["provider": "openai", "model": "gpt-4o", "agent": "b", "request": fiveCentRequest]

@Suite(.timeLimit(.minutes(2)), .serialized) struct ControlTests {
    @Test func aKillSwitchRefusesTheNextCheckInItsScopeAndSurvivesARestart() async throws {
        let daemon = try TestDaemon()
        defer { daemon.stop(); daemon.cleanUp() }
        try await daemon.start()
        let client = daemon.client
        #expect(try await client.post("/v1/check", checkA).json["decision"] as? String == "allow")
        let flip = try await client.post("/v1/kill", ["agent": "a"])
        #expect(flip.status == 200)
        #expect(flip.json["changed"] as? Bool == true)
        // The very next check in scope is refused; other scopes go on.
        let killed = try await client.post("/v1/check", checkA)
        #expect(killed.status == 200)
        #expect(killed.json["decision"] as? String == "killed")
        #expect((killed.json["error"] as? [String: Any])?["code"] as? String == "killed")
        #expect(killed.json["reservation_id"] == nil)
        #expect(try await client.post("/v1/check", checkB).json["decision"] as? String == "allow")

        // The CLI turns on the global switch; it and the agent switch survive a restart.
        let cli = try await daemon.cli("kill")
        #expect(cli.status == 0, "\(cli.err)")
        #expect(try await client.post("/v1/check", checkB).json["decision"] as? String == "killed")
        try await daemon.stopped()
        try await daemon.start()
        #expect(try await client.post("/v1/check", checkB).json["decision"] as? String == "killed")
        #expect(try await daemon.cli("kill", "--off").status == 0)
        #expect(try await client.post("/v1/check", checkB).json["decision"] as? String == "allow")
        #expect(try await client.post("/v1/check", checkA).json["decision"] as? String == "killed")
        #expect(try await daemon.cli("kill", "--agent", "a", "--off").status == 0)
        #expect(try await client.post("/v1/check", checkA).json["decision"] as? String == "allow")

        // Every flip is recorded with who made it; refused checks are ledger rows.
        let kills = try await client.getJSON("/v1/kill").json
        #expect((kills["on"] as? [Any])?.isEmpty == true)
        let flips = kills["flips"] as? [[String: Any]] ?? []
        #expect(flips.count == 4)
        #expect(flips.allSatisfy { int64(($0["by"] as? [String: Any])?["pid"]) != nil })
        #expect(flips.contains { (($0["by"] as? [String: Any])?["exe"] as? String)?.hasSuffix("spendwall") == true })
        let rows = try await client.getJSON("/v1/ledger?limit=100").json["rows"] as? [[String: Any]] ?? []
        #expect(rows.filter { $0["outcome"] as? String == "killed" }.count == 4)
        let list = try await daemon.cli("kill", "--list")
        #expect(list.out.contains("No kill switch is on."), "\(list.out)")
    }

    @Test func killRequestsAreValidated() async throws {
        try await TestDaemon.with { daemon in
            let both = try await daemon.client.post("/v1/kill", ["agent": "a", "app": "x"])
            #expect(both.status == 400)
            #expect((both.json["error"] as? [String: Any])?["code"] as? String == "bad_request")
            #expect(try await daemon.client.post("/v1/kill", ["agent": ""]).status == 400)
            #expect(try await daemon.client.post("/v1/kill", ["on": "yes"]).status == 400)
            let usage = try await daemon.cli("kill", "--agent", "a", "--app", "x")
            #expect(usage.status == 2)
            #expect(try await daemon.client.post("/v1/check", checkA).json["decision"] as? String == "allow")
        }
    }

    @Test func theEventStreamCarriesSpendWarningsBlocksAndKills() async throws {
        let caps = """
            [[cap]]
            name = "a-dollar"
            scope = { agent = "a" }
            window = "1d"
            limit_usd = 0.30
            warn_at = 0.5
            """
        try await TestDaemon.with(caps: caps) { daemon in
            let client = daemon.client
            let log = EventLog()
            let follower = Task { try await log.follow(client) }
            defer { follower.cancel() }
            try await log.wait { log.isOpen }
            // $0.05 per check; each report settles at $0.05 too: the 3rd call crosses $0.15.
            for _ in 0..<6 {
                let check = try await client.post("/v1/check", checkA).json
                guard let id = check["reservation_id"] as? String else { break }
                _ = try await client.post("/v1/report", ["reservation_id": id, "usage": ["output_tokens": 5000]])
            }
            #expect(try await client.post("/v1/check", checkA).json["decision"] as? String == "block")
            _ = try await client.post("/v1/kill", ["session": "s1"])
            try await log.wait { log.kinds.contains("KillSwitch") }
            let kinds = log.kinds
            #expect(log.all("CapAlert").count == 1, "\(kinds)")
            #expect(log.all("CapBlocked").count == 1, "\(kinds)")
            #expect(
                log.all("SpendObserved").filter { ($0["data"] as? [String: Any])?["outcome"] as? String == "ok" }.count
                    == 6)
            #expect(kinds.last == "KillSwitch", "\(kinds)")
            let alert = log.all("CapAlert").first?["data"] as? [String: Any]
            #expect((alert?["cap"] as? [String: Any])?["name"] as? String == "a-dollar")
            #expect(alert?["exceeded"] as? Bool == false)
            // The warning came when spent plus reserved crossed half the limit, not later.
            let firstAlert = kinds.firstIndex(of: "CapAlert")!
            #expect(kinds[..<firstAlert].filter { $0 == "SpendObserved" }.count == 2, "\(kinds)")
            let kill = log.all("KillSwitch").first?["data"] as? [String: Any]
            #expect((kill?["scope"] as? [String: Any])?["value"] as? String == "s1")

            let unknown = try await client.getJSON("/v1/events?kinds=Nope")
            #expect(unknown.status == 400)
        }
    }

    @Test func aStalledSubscriberNeitherGrowsTheDaemonNorDelaysOthers() async throws {
        try await TestDaemon.with { daemon in
            let client = daemon.client
            // A subscriber that asks for the stream and never reads a byte.
            let stalled = try RawSocket(path: daemon.socketPath)
            stalled.send("GET /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let log = EventLog()
            let follower = Task { try await log.follow(client, kinds: ["SpendObserved"]) }
            defer { follower.cancel() }
            try await log.wait { log.isOpen }
            let rss = { () -> Int in
                let status =
                    (try? String(contentsOfFile: "/proc/\(daemon.process!.processIdentifier)/status", encoding: .utf8))
                    ?? ""
                let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
                return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
            }
            var sent = 0
            func flood(_ batches: Int) async throws {
                for _ in 0..<batches {
                    let reports = (0..<1000).map { i -> [String: Any] in
                        [
                            "id": "stall-\(sent)-\(i)", "provider": "openai", "model": "gpt-4o", "agent": "flood",
                            "tags": ["padding": String(repeating: "x", count: 500)],
                            "usage": ["input_tokens": 10, "output_tokens": 10],
                        ]
                    }
                    sent += 1
                    #expect(try await client.post("/v1/reports", ["reports": reports]).status == 200)
                    // A reader that keeps up is one batch (some 700 kB) behind at most, well inside
                    // its 4 MiB bound: waiting here keeps a slow test machine from making this
                    // reader a stalled one too.
                    try await log.wait { log.count("SpendObserved") >= sent * 1000 }
                }
            }
            // Warm up (ledger, allocator), then flood some 18 MB more of events past the stalled reader.
            try await flood(4)
            let before = rss()
            try await flood(12)
            #expect(log.count("SpendObserved") == sent * 1000, "the reading subscriber lost events")
            let health = try await client.getJSON("/v1/health").json
            #expect(int64(health["events_dropped"]) ?? 0 > 0, "the stalled subscriber should have lost events")
            #expect(int64(health["event_subscribers"]) == 2)
            #expect(int64(health["events_queued_bytes"]) ?? .max <= 4 << 20)
            // Unbounded, this flood grows the daemon by some 55 MB (measured with the bound removed).
            #expect(rss() - before < 20_000, "RSS grew from \(before) kB to \(rss()) kB")
            withExtendedLifetime(stalled) {}
        }
    }

    @Test func aBrokenCapsFileKeepsTheOldCapsAndAFixReloadsWithoutARestart() async throws {
        try await TestDaemon.with(caps: dollarCapToml) { daemon in
            let client = daemon.client
            let log = EventLog()
            let follower = Task { try await log.follow(client, kinds: ["ConfigError", "ConfigReloaded"]) }
            defer { follower.cancel() }
            try await log.wait { log.isOpen }
            try daemon.writeConfig("caps.toml", dollarCapToml + "\n[[cap]]\nname = \"broken\"\nlimit_usd = \n")
            try await log.wait { log.kinds.contains("ConfigError") }
            let health = try await client.getJSON("/v1/health").json
            let error = health["config_error"] as? String ?? ""
            #expect(error.hasPrefix("caps.toml:9"), "\(error)")
            let doctor = try await daemon.cli("doctor")
            #expect(doctor.status == 1)
            #expect(doctor.out.contains("caps.toml:9"), "\(doctor.out)")
            // The $1.00 cap still holds: 20 checks of $0.05, then a block.
            for _ in 0..<20 { _ = try await client.post("/v1/check", checkA) }
            #expect(try await client.post("/v1/check", checkA).json["decision"] as? String == "block")

            let fixed = dollarCapToml.replacingOccurrences(of: "limit_usd = 1.0", with: "limit_usd = 2.0")
            try daemon.writeConfig("caps.toml", fixed)
            try await log.wait { log.kinds.contains("ConfigReloaded") }
            #expect(log.kinds.contains("ConfigReloaded"))
            #expect((try await client.getJSON("/v1/health").json["config_error"]) == nil)
            #expect(try await client.post("/v1/check", checkA).json["decision"] as? String == "allow")
            #expect(try await daemon.cli("doctor").status == 0)
        }
    }

    @Test func spendwallTomlReloadsLiveAndNamesWhatNeedsARestart() async throws {
        try await TestDaemon.with { daemon in
            let client = daemon.client
            let log = EventLog()
            let follower = Task { try await log.follow(client, kinds: ["ConfigError", "ConfigReloaded"]) }
            defer { follower.cancel() }
            try await log.wait { log.isOpen }
            let check: [String: Any] = ["provider": "openai", "model": "gpt-4o", "agent": "live"]
            // 4,096 output tokens reserved by default: $0.04096 of gpt-4o.
            #expect(int64(try await client.post("/v1/check", check).json["reserved_nanousd"]) == 40_960_000)
            try daemon.writeConfig(
                "spendwall.toml",
                "[daemon]\nmax_body_bytes = 2048\n[policy]\nfail_mode = \"closed\"\ndefault_max_tokens = 100\n")
            try await log.wait { log.count("ConfigReloaded") >= 1 }
            #expect(log.count("ConfigReloaded") == 1)
            #expect(try await client.getJSON("/v1/health").json["fail_mode"] as? String == "closed")
            #expect(int64(try await client.post("/v1/check", check).json["reserved_nanousd"]) == 1_000_000)
            #expect(
                daemon.log.contains("[daemon] max_body_bytes changed; that applies at the next start"), "\(daemon.log)")
            // A broken spendwall.toml keeps what runs, and says where the error is.
            try daemon.writeConfig("spendwall.toml", "[policy]\nfail_mode = \"sometimes\"\n")
            try await log.wait { log.kinds.contains("ConfigError") }
            let health = try await client.getJSON("/v1/health").json
            #expect((health["config_error"] as? String)?.hasPrefix("spendwall.toml:2") == true, "\(health)")
            #expect(health["fail_mode"] as? String == "closed")
        }
    }

    @Test func logsPrintsRecentRowsAndFollowsNewOnes() async throws {
        try await TestDaemon.with { daemon in
            let client = daemon.client
            let first = try await client.post("/v1/check", checkA).json
            _ = try await client.post(
                "/v1/report", ["reservation_id": first["reservation_id"]!, "usage": ["output_tokens": 1]])
            let recent = try await daemon.cli("logs", "-n", "5")
            #expect(recent.status == 0)
            #expect(recent.out.contains("gpt-4o"), "\(recent.out)")

            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestDaemon.binaryPath)
            process.arguments = ["logs", "--tail", "--json", "-n", "0"]
            process.environment = daemon.environment
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            defer { process.terminate() }
            let lines = Mutex<String>("")
            pipe.fileHandleForReading.readabilityHandler = { handle in
                let text = String(decoding: handle.availableData, as: UTF8.self)
                lines.withLock { $0 += text }
            }
            defer { pipe.fileHandleForReading.readabilityHandler = nil }
            try await Task.sleep(for: .milliseconds(500))
            let second = try await client.post("/v1/check", checkB).json
            let id = second["reservation_id"] as? String ?? ""
            _ = try await client.post("/v1/report", ["reservation_id": id, "usage": ["output_tokens": 2]])
            for _ in 0..<100 where !lines.withLock({ $0.contains(id) }) { try await Task.sleep(for: .milliseconds(50)) }
            let output = lines.withLock { $0 }
            #expect(output.contains(id), "\(output)")
            #expect(!output.contains(first["reservation_id"] as? String ?? "?"), "-n 0 prints no history")
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct CapsEditTests {
    @Test func capsSetAndRmEditTheFileAndTheRunningDaemon() async throws {
        try await TestDaemon.with(caps: "# hand-written\n" + dollarCapToml) { daemon in
            let set = try await daemon.cli(
                "caps", "set", "reviewer", "--scope", "agent=a", "--window", "1h", "--limit-usd", "0.05")
            #expect(set.status == 0, "\(set.err)")
            #expect(set.out.contains("now enforces 2 caps"), "\(set.out)")
            let text = try String(
                contentsOf: daemon.configDirectory.appendingPathComponent("caps.toml"), encoding: .utf8)
            #expect(text.hasPrefix("# hand-written\n"))
            #expect(try await daemon.client.post("/v1/check", checkA).json["decision"] as? String == "allow")
            #expect(try await daemon.client.post("/v1/check", checkA).json["decision"] as? String == "block")
            let bad = try await daemon.cli(
                "caps", "set", "x", "--scope", "planet=mars", "--window", "1d", "--limit-usd", "1")
            #expect(bad.status == 2)
            #expect(try await daemon.cli("caps", "rm", "reviewer").status == 0)
            #expect(try await daemon.cli("caps", "rm", "reviewer").status == 1)
            let listed = try await daemon.cli("caps", "ls")
            #expect(!listed.out.contains("reviewer"))
            let mode =
                try FileManager.default.attributesOfItem(
                    atPath: daemon.configDirectory.appendingPathComponent("caps.toml").path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct ExportTests {
    @Test func exportWritesCSVAndJSONThatParsersRead() async throws {
        try await TestDaemon.with { daemon in
            let tags = ["note": "a, \"quoted\"\nvalue"]
            for agent in ["a", "b"] {
                let check = try await daemon.client.post(
                    "/v1/check", ["provider": "openai", "model": "gpt-4o", "agent": agent, "tags": tags]
                ).json
                _ = try await daemon.client.post(
                    "/v1/report", ["reservation_id": check["reservation_id"]!, "usage": ["output_tokens": 7]])
            }
            let csv = try await daemon.cli("export", "--format", "csv", "--since", "1h")
            #expect(csv.status == 0, "\(csv.err)")
            let csvPath = daemon.root.appendingPathComponent("export.csv").path
            try csv.out.write(toFile: csvPath, atomically: true, encoding: .utf8)
            let parsed = try await TestDaemon.run(
                "/usr/bin/env",
                [
                    "python3", "-c",
                    "import csv,json,sys; r=list(csv.DictReader(open(sys.argv[1], newline=''))); print(json.dumps([[x['agent'], x['tags'], x['output_tokens']] for x in r]))",
                    csvPath,
                ])
            #expect(parsed.status == 0, "\(parsed.err)")
            let rows = try JSONSerialization.jsonObject(with: Data(parsed.out.utf8)) as? [[String]] ?? []
            #expect(rows.map { $0[0] } == ["a", "b"])
            #expect(rows.allSatisfy { $0[2] == "7" })
            let storedTags =
                try JSONSerialization.jsonObject(with: Data((rows.first?[1] ?? "{}").utf8)) as? [String: String]
            #expect(storedTags == tags)

            let json = try await daemon.cli("export", "--format", "json")
            let objects = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]] ?? []
            #expect(objects.count == 2)
            #expect(objects.first?["tags"] as? [String: String] == tags)
            #expect(int64(objects.first?["output_tokens"]) == 7)
            #expect(try await daemon.cli("export", "--format", "xml").status == 2)
        }
    }
}
