import Foundation
import SpendwallTestSupport
import Testing

/// A plain-stdlib Python agent: raw HTTP over the Unix socket, check then report.
let pythonAgent = """
    import http.client, json, os, socket, sys

    class UnixConnection(http.client.HTTPConnection):
        def __init__(self, path):
            super().__init__("localhost")
            self.unix_path = path
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(self.unix_path)

    conn = UnixConnection(sys.argv[1])
    def call(path, body):
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())

    check = call("/v1/check", {"provider": "openai", "model": "gpt-4o-mini", "agent": "reviewer-bot",
                               "tags": {"customer": "acme"}, "request": {"max_tokens": 100, "messages": []}})
    report = call("/v1/report", {"reservation_id": check["reservation_id"], "status": 200, "duration_ms": 12,
                                 "usage": {"input_tokens": 1200, "output_tokens": 300, "cache_read_tokens": 400}})
    print(json.dumps({"pid": os.getpid(), "exe": os.path.realpath(sys.executable), "request_id": report["request_id"]}))
    """

@Suite(.timeLimit(.minutes(2)), .serialized) struct AttributionTests {
    @Test func aPythonProgramIsRecordedWithItsPidExeAndScriptAndLabel() async throws {
        let labels = """
            [[label]]
            exe = "*/python3*"
            script = "*/reviewer.py"
            app = "reviewer"
            """
        try await TestDaemon.with(files: ["labels.toml": labels]) { daemon in
            let script = daemon.root.appendingPathComponent("agents/reviewer.py")
            try FileManager.default.createDirectory(
                at: script.deletingLastPathComponent(), withIntermediateDirectories: true)
            try pythonAgent.write(to: script, atomically: true, encoding: .utf8)
            let run = try await TestDaemon.run("/usr/bin/env", ["python3", script.path, daemon.socketPath])
            #expect(run.status == 0, "\(run.err)")
            let agent = try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as! [String: Any]

            let rows = try await daemon.client.getJSON("/v1/ledger?limit=5").json["rows"] as? [[String: Any]]
            let row = try #require(rows?.first)
            #expect(row["request_id"] as? String == agent["request_id"] as? String)
            #expect(int64(row["peer_pid"]) == int64(agent["pid"]))
            #expect(int64(row["peer_uid"]) == Int64(getuid()))
            #expect(row["peer_exe"] as? String == agent["exe"] as? String)
            #expect(row["peer_script"] as? String == script.path)
            #expect(row["app"] as? String == "reviewer")
            #expect(row["agent"] as? String == "reviewer-bot")
            #expect((row["tags"] as? [String: String]) == ["customer": "acme"])

            // gpt-4o-mini: $0.15/M in, $0.60/M out, $0.075/M cached.
            let cost: Int64 = 180_000 + 180_000 + 30_000
            #expect(int64(row["cost_nanousd"]) == cost)

            let table = try await daemon.cli("ls", "--by", "app", "--since", "1h")
            #expect(table.status == 0, "\(table.err)")
            let line = try #require(table.out.split(separator: "\n").first { $0.hasPrefix("reviewer") })
            let cells = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            #expect(cells == ["reviewer", "1", "1,200", "300", "400", "0", "$0.0004", "100.0%"])

            let json = try await daemon.cli("ls", "--by", "app", "--since", "1h", "--json")
            let answer = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as! [String: Any]
            let jsonRow = try #require((answer["rows"] as? [[String: Any]])?.first)
            #expect(jsonRow["key"] as? String == "reviewer")
            #expect(int64(jsonRow["calls"]) == 1)
            #expect(int64(jsonRow["input_tokens"]) == 1200)
            #expect(int64(jsonRow["output_tokens"]) == 300)
            #expect(int64(jsonRow["cache_read_tokens"]) == 400)
            #expect(int64(jsonRow["cost_nanousd"]) == cost)

            let byTag = try await daemon.cli("ls", "--by", "tag", "--since", "1d", "--json")
            #expect(byTag.out.contains("customer=acme"))
        }
    }

    @Test func withoutALabelTheScriptNameIsTheApp() async throws {
        try await TestDaemon.with(files: ["labels.toml": "[[label]]\nexe = \"/nothing/*\"\napp = \"none\"\n"]) {
            daemon in
            let script = daemon.root.appendingPathComponent("my_agent.py")
            try pythonAgent.write(to: script, atomically: true, encoding: .utf8)
            let run = try await TestDaemon.run("/usr/bin/env", ["python3", script.path, daemon.socketPath])
            #expect(run.status == 0, "\(run.err)")
            let rows = try await daemon.client.getJSON("/v1/ledger?limit=5").json["rows"] as? [[String: Any]]
            #expect(rows?.first?["app"] as? String == "my_agent.py")
        }
    }
}
