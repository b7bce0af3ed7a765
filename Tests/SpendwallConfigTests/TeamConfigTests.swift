import Foundation
import Testing

@testable import SpendwallConfig
@testable import SpendwallCore

@Suite struct TeamConfigTests {
    func load(_ text: String, env: [String: String] = [:]) throws -> SpendwallConfiguration {
        var config = SpendwallConfiguration()
        try config.apply(TOMLSource(file: "spendwall.toml", text: text), environment: env)
        return config
    }

    @Test func readsTheTeamSection() throws {
        let config = try load(
            """
            [team]
            database = "postgres://sw@db.internal:6543/spend"
            machine = "ci-7"
            offline = "local-only"
            lease_ttl = "5m"
            """, env: ["SPENDWALL_TEAM_PASSWORD": "s3cret"])
        let team = try #require(config.team)
        #expect(team.host == "db.internal" && team.port == 6543 && team.user == "sw" && team.databaseName == "spend")
        #expect(team.password == "s3cret")
        #expect(team.machine == "ci-7" && team.offline == .localOnly && team.leaseTTLMS == 300_000)
        #expect(team.displayURL == "postgres://sw@db.internal:6543/spend")
    }

    @Test func theMachineDefaultsToTheHostName() throws {
        let team = try #require(try load("[team]\ndatabase = \"postgres://sw@h/db\"\n").team)
        #expect(team.machine == ProcessInfo.processInfo.hostName)
        #expect(team.offline == .block)
    }

    @Test func aPasswordFileMustBeOwnerOnly() throws {
        let path = NSTemporaryDirectory() + "/sw-team-pw-\(UUID().uuidString)"
        try "pw\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        let toml = "[team]\ndatabase = \"postgres://sw@h/db\"\npassword_file = \"\(path)\"\n"
        #expect(throws: ConfigError.self) { try load(toml) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        #expect(try load(toml).team?.password == "pw")
    }

    @Test(arguments: [
        "[team]\nmachine = \"x\"\n", "[team]\ndatabase = \"mysql://h/db\"\n",
        "[team]\ndatabase = \"postgres://sw@h/db\"\noffline = \"sometimes\"\n",
        "[team]\ndatabase = \"postgres://sw@h/db\"\nlease_ttl = \"1s\"\n",
    ])
    func badTeamSectionsNameTheProblem(_ text: String) {
        #expect(throws: ConfigError.self) { try load(text) }
    }

    @Test func teamCapsParse() throws {
        let caps = try CapsFile.parse(
            """
            [[cap]]
            name = "org"
            scope = { team = true }
            window = "week"
            limit_usd = 500
            [[cap]]
            name = "per-repo"
            scope = { tag = { repo = "*" }, team = true }
            window = "day"
            limit_usd = 50
            [[cap]]
            name = "mine"
            scope = { global = true }
            window = "day"
            limit_usd = 5
            """)
        #expect(caps.map(\.team) == [true, true, false])
        #expect(caps[0].scope == .global)
        #expect(caps[1].scope == .tag(key: "repo", value: .each))
    }

    @Test func aTeamCapTakesDollarsOnly() {
        #expect(throws: ConfigError.self) {
            try CapsFile.parse(
                "[[cap]]\nname = \"t\"\nscope = { team = true }\nwindow = \"day\"\nlimit_tokens = 100\n")
        }
    }
}
