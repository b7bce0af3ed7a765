import Foundation
import SpendwallPricing
import Testing

@testable import SpendwallConfig
@testable import SpendwallCore

@Suite struct CapsFileTests {
    @Test func parsesEveryScopeAndWindow() throws {
        let caps = try CapsFile.parse(
            """
            [[cap]]
            name = "reviewer-daily"
            scope = { agent = "code-reviewer" }
            window = "1d"
            limit_usd = 10.0
            action = "block"
            warn_at = 0.8

            [[cap]]
            name = "acme"
            scope = { tag = { customer = "acme" } }
            window = "month"
            limit_usd = 250
            limit_tokens = 1000000
            action = "alert"

            [[cap]]
            name = "sessions"
            scope = { session = "*" }
            window = "1h"
            limit_tokens = 50000

            [[cap]]
            name = "all"
            scope = { global = true }
            window = "week"
            limit_usd = 0.5
            """)
        #expect(caps.count == 4)
        #expect(caps[0].scope == .agent(.exact("code-reviewer")))
        #expect(caps[0].limitNanoUSD == 10_000_000_000)
        #expect(caps[1].scope == .tag(key: "customer", value: .exact("acme")))
        #expect(caps[1].window == .calendar(.month))
        #expect(caps[1].limitNanoUSD == 250_000_000_000)
        #expect(caps[1].action == .alert)
        #expect(caps[2].scope == .session(.each))
        #expect(caps[2].limitNanoUSD == nil)
        #expect(caps[3].scope == .global)
        #expect(caps[3].action == .block)
    }

    @Test func syntaxErrorsNameTheFileAndLine() {
        do {
            _ = try CapsFile.parse("[[cap]]\nname = \"x\"\nwindow = 1d\n")
            Issue.record("should fail")
        } catch {
            #expect(error.file == "caps.toml")
            #expect(error.line == 3)
            #expect(error.description.hasPrefix("caps.toml:3:"))
        }
    }

    @Test(arguments: [
        ("[[cap]]\nname = \"a\"\nscope = { global = true }\nwindow = \"fortnight\"\nlimit_usd = 1\n", 4, "window"),
        ("[[cap]]\nname = \"a\"\nscope = { global = true }\nwindow = \"1d\"\n", 1, "limit_usd"),
        ("[[cap]]\nname = \"a\"\nscope = { global = true }\nwindow = \"1d\"\nlimit_usd = -3\n", 5, "non-negative"),
        ("[[cap]]\nname = \"a\"\nscope = { nobody = \"x\" }\nwindow = \"1d\"\nlimit_usd = 1\n", 3, "scope"),
        (
            "[[cap]]\nname = \"a\"\nscope = { global = true }\nwindow = \"1d\"\nlimit_usd = 1\nlimt = 2\n", 6,
            "unknown key limt"
        ),
        (
            "[[cap]]\nname = \"a\"\nscope = { global = true }\nwindow = \"1d\"\nlimit_usd = 1\naction = \"ask\"\n",
            6, "\"block\", \"alert\" or \"approve\""
        ),
        (
            "[[cap]]\nname = \"a\"\nscope = { global = true }\nwindow = \"1d\"\nlimit_usd = 1\n\n[[cap]]\nname = \"a\"\nscope = { global = true }\nwindow = \"1d\"\nlimit_usd = 1\n",
            8, "two caps"
        ),
        (
            "[[cap]]\nname = \"a\"\nscope = { global = true }\nwindow = \"1d\"\nlimit_usd = 1\nreserve = \"p99\"\n",
            6, "\"worst_case\" or \"expected\""
        ),
        (
            "[[cap]]\nname = \"a\"\nscope = { global = true }\nwindow = \"1d\"\nlimit_usd = 1\nreserve = \"expected\"\nreserve_percentile = 99\n",
            7, "fraction from 0.5 to 1"
        ),
        (
            "[[cap]]\nname = \"a\"\nscope = { global = true }\nwindow = \"1d\"\nlimit_usd = 1\nreserve_percentile = 0.9\n",
            6, "only with reserve = \"expected\""
        ),
    ])
    func invalidCapsNameTheLine(text: String, line: Int, fragment: String) {
        do {
            _ = try CapsFile.parse(text)
            Issue.record("should fail: \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(fragment), "\(error)")
        }
    }
}

@Suite struct ConfigurationTests {
    let paths = SpendwallPaths(configDirectory: "/c", dataDirectory: "/d", socketPath: "/s/x.sock")

    @Test func defaultsAreComplete() {
        let config = SpendwallConfiguration(paths: paths)
        #expect(config.failMode == .open)
        #expect(config.defaultMaxTokens == 4096)
        #expect(config.proxyListen.description == "127.0.0.1:8787")
    }

    @Test func spendwallTomlApplies() throws {
        var config = SpendwallConfiguration(paths: paths)
        try config.apply(
            TOMLSource(
                file: "spendwall.toml",
                text: "[policy]\nfail_mode = \"closed\"\nreservation_ttl = \"2m\"\n[pricing]\nfallback_input_usd = 1\n")
        )
        #expect(config.failMode == .closed)
        #expect(config.reservationTTLMS == 120_000)
        #expect(config.fallbackPrice.inputPerMillion == 1_000_000_000)
    }

    @Test func badSettingsAreRefusedWithTheLine() throws {
        var config = SpendwallConfiguration(paths: paths)
        #expect(throws: ConfigError.self) {
            try config.apply(TOMLSource(file: "spendwall.toml", text: "[policy]\nfail_mode = \"sideways\"\n"))
        }
        do {
            try config.apply(TOMLSource(file: "spendwall.toml", text: "[policy]\n\nfail_mode = \"sideways\"\n"))
        } catch {
            #expect(error.line == 3)
        }
    }

    @Test func pathsFollowTheEnvironment() {
        let env = ["HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000"]
        let resolved = SpendwallPaths.resolve(environment: env)
        #expect(resolved.configDirectory == "/home/u/.config/spendwall")
        #expect(resolved.dataDirectory == "/home/u/.local/share/spendwall")
        #expect(resolved.socketPath == "/run/user/1000/spendwall/spendwall.sock")
        let overridden = SpendwallPaths.resolve(
            environment: env.merging(["SPENDWALL_SOCKET": "/tmp/x.sock", "SPENDWALL_CONFIG_DIR": "/etc/sw"]) { $1 })
        #expect(overridden.socketPath == "/tmp/x.sock")
        #expect(overridden.configDirectory == "/etc/sw")
        #expect(SpendwallPaths.resolve(environment: ["HOME": "/h"]).socketPath.hasPrefix("/tmp/spendwall-"))
    }

    @Test func labelsAndPricingParse() throws {
        let labels = try LabelsFile.parse(
            "[[label]]\nexe = \"*/python3*\"\nscript = \"*/reviewer.py\"\napp = \"reviewer\"\n")
        #expect(labels == [LabelRule(exe: "*/python3*", script: "*/reviewer.py", app: "reviewer")])
        let prices = try PricingFile.parse("[models.\"my-model\"]\ninput = 3.0\noutput = 12\ncache_read = 0.3\n")
        #expect(prices["my-model"]?.outputPerMillion == 12_000_000_000)
        #expect(prices["my-model"]?.cacheWritePerMillion == 3_000_000_000)
        #expect(throws: ConfigError.self) { try PricingFile.parse("[models.x]\ninput = 1\n") }
    }

    @Test func capsTakeAReserveMode() throws {
        let caps = try CapsFile.parse(
            """
            [[cap]]
            name = "coder"
            scope = { agent = "coder" }
            window = "1d"
            limit_usd = 5
            reserve = "expected"
            reserve_percentile = 0.95
            [[cap]]
            name = "all"
            scope = { global = true }
            window = "1d"
            limit_usd = 50
            """)
        #expect(caps[0].reserve == .expected && caps[0].reservePercentile == 0.95)
        #expect(caps[1].reserve == .worstCase && caps[1].reservePercentile == 0.99)
    }

    @Test func pricingFileTakesTiersBatchShareAndPatterns() throws {
        let prices = try PricingFile.parse(
            """
            [models."big"]
            input = 3
            output = 15
            cache_write = 3.75
            cache_write_1h = 6
            batch_percent = 40
            long_context = { above_tokens = 200000, input = 6, output = 22.5 }
            as_of = "2026-11-30"
            [models."ft:gpt-4o-mini*"]
            input = 0.3
            output = 1.2
            """)
        let big = try #require(prices["big"])
        #expect(big.cacheWrite1hPerMillion == 6_000_000_000)
        #expect(big.batchPercent == 40)
        #expect(
            big.longContext
                == LongContextPrice(
                    thresholdTokens: 200_000,
                    rates: TokenRates(
                        input: 6_000_000_000, output: 22_500_000_000, cacheRead: 6_000_000_000,
                        cacheWrite: 6_000_000_000,
                        cacheWrite1h: 6_000_000_000)))
        #expect(big.asOf == "2026-11-30")
        let table = PriceTable(entries: prices)
        #expect(table.resolve("ft:gpt-4o-mini-2024-07-18:acme::abc").entry == "ft:gpt-4o-mini*")
    }

    @Test(arguments: [
        ("[models.x]\ninput = 1\noutput = 1\nbatch_percent = 150\n", "batch_percent", 4),
        ("[models.x]\ninput = 1\noutput = 1\nlong_context = { input = 2, output = 2 }\n", "above_tokens", 4),
        ("[models.x]\ninput = 1\noutput = 1\nlong_context = 5\n", "long_context must be a table", 4),
        ("[models.x]\ninput = 1\noutput = 1\ncache_write_1h = \"lots\"\n", "cache_write_1h must be a number", 4),
        ("[models.x]\ninput = 1\noutput = -1\n", "non-negative", 2),
        (
            "[models.x]\ninput = 1\noutput = 1\nlong_context = { above_tokens = 9, input = 1, output = 1, speed = 2 }\n",
            "unknown key speed", 4
        ),
    ])
    func badPricingFilesSayWhatIsWrong(_ example: (String, String, Int)) {
        do {
            _ = try PricingFile.parse(example.0)
            Issue.record("accepted: \(example.0)")
        } catch {
            #expect(error.description.contains(example.1), "\(error.description)")
            #expect(error.description.hasPrefix("pricing.toml:\(example.2): "), "\(error.description)")
        }
    }

    @Test func defaultFilesParse() throws {
        for (name, text) in DefaultConfigFiles.contents {
            switch name {
            case "caps.toml": #expect(try CapsFile.parse(text).isEmpty)
            case "labels.toml": #expect(try LabelsFile.parse(text) == LabelsFile.defaults)
            case "pricing.toml": #expect(try PricingFile.parse(text).isEmpty)
            default:
                var config = SpendwallConfiguration(paths: paths)
                try config.apply(TOMLSource(file: name, text: text))
            }
        }
    }
}

@Suite struct ListenAddressTests {
    @Test(arguments: [
        ("127.0.0.1:8787", "127.0.0.1", 8787), ("127.1.2.3:0", "127.1.2.3", 0), ("localhost:9000", "localhost", 9000),
        ("[::1]:8787", "::1", 8787),
    ])
    func loopbackAddressesAreTaken(_ example: (String, String, Int)) throws {
        let address = try ListenAddress.parse(example.0).get()
        #expect(address.host == example.1)
        #expect(address.port == example.2)
        #expect(address.description == example.0)
    }

    @Test(arguments: [
        ("0.0.0.0:8787", "not a loopback address"), ("192.168.1.4:8787", "not a loopback address"),
        ("[::]:8787", "not a loopback address"), ("example.com:80", "not a loopback address"),
        ("127.0.0.256:80", "not a loopback address"), ("127.0.0.01:80", "not a loopback address"),
        ("127.0.0.1", "not host:port"), ("127.0.0.1:http", "no valid port"), ("127.0.0.1:70000", "no valid port"),
        ("[::1]8787", "not host:port"),
    ])
    func everythingElseIsRefusedWithAReason(_ example: (String, String)) {
        guard case .failure(let error) = ListenAddress.parse(example.0) else {
            Issue.record("\(example.0) was accepted")
            return
        }
        #expect(error.message.contains(example.1), "\(error.message)")
    }

    @Test func spendwallTomlAndTheEnvironmentAreChecked() throws {
        let paths = SpendwallPaths(configDirectory: "/c", dataDirectory: "/d", socketPath: "/s/x.sock")
        var config = SpendwallConfiguration(paths: paths)
        #expect(throws: ConfigError.self) {
            try config.apply(TOMLSource(file: "spendwall.toml", text: "[proxy]\n\nlisten = \"0.0.0.0:8787\"\n"))
        }
        do {
            try config.apply(TOMLSource(file: "spendwall.toml", text: "[proxy]\n\nlisten = \"0.0.0.0:8787\"\n"))
        } catch {
            #expect(error.line == 3)
            #expect(error.description.hasPrefix("spendwall.toml:3: listen: "))
        }
        try config.apply(TOMLSource(file: "spendwall.toml", text: "[proxy]\nlisten = \"127.0.0.1:9999\"\n"))
        #expect(config.proxyListen.port == 9999)
        #expect(throws: ConfigError.self) {
            try SpendwallConfiguration.load(paths: paths, environment: ["SPENDWALL_PROXY_ADDR": "10.0.0.1:1"])
        }
        let fromEnv = try SpendwallConfiguration.load(paths: paths, environment: ["SPENDWALL_PROXY_ADDR": "[::1]:0"])
        #expect(fromEnv.proxyListen == ListenAddress(host: "::1", port: 0))
    }
}

@Suite struct ProviderKeysTests {
    func directory(_ keys: String?, mode: Int = 0o600) throws -> SpendwallPaths {
        let root = NSTemporaryDirectory() + "spendwall-keys-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        if let keys {
            _ = FileManager.default.createFile(atPath: root + "/keys.toml", contents: Data(keys.utf8))
            chmod(root + "/keys.toml", mode_t(mode))
        }
        return SpendwallPaths(configDirectory: root, dataDirectory: root, socketPath: root + "/s.sock")
    }

    @Test func aPrivateKeysFileIsReadAndTheEnvironmentWins() throws {
        let paths = try directory("openai = \"sk-file\"\nanthropic = \"sk-ant-file\"\nplaceholder = \"please\"\n")
        let keys = try ProviderKeys.load(paths: paths, environment: ["SPENDWALL_OPENAI_KEY": "sk-env"])
        #expect(keys == ProviderKeys(openAI: "sk-env", anthropic: "sk-ant-file", placeholder: "please"))
        #expect(!keys.description.contains("sk-"), "keys never appear in text: \(keys)")
        #expect(try ProviderKeys.load(paths: try directory(nil), environment: [:]).isEmpty)
    }

    @Test func aKeysFileOthersCanReadIsRefusedWithTheFix() throws {
        let paths = try directory("openai = \"sk-file\"\n", mode: 0o644)
        #expect(throws: ConfigError.self) { try ProviderKeys.load(paths: paths, environment: [:]) }
        do {
            _ = try ProviderKeys.load(paths: paths, environment: [:])
        } catch {
            #expect(error.description.contains("chmod 600"), "\(error)")
            #expect(!error.description.contains("sk-file"))
        }
        let typo = try directory("opneai = \"sk-file\"\n")
        #expect(throws: ConfigError.self) { try ProviderKeys.load(paths: typo, environment: [:]) }
    }
}
