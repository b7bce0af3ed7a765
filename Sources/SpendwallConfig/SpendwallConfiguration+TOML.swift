import Foundation
import SpendwallCore
import SpendwallPricing
import TOMLKit

extension SpendwallConfiguration {
    /// Loads spendwall.toml from the config directory (a missing file means all defaults),
    /// then applies the environment overrides.
    public static func load(
        paths: SpendwallPaths, environment env: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> SpendwallConfiguration {
        var config = SpendwallConfiguration(paths: paths)
        let file = paths.configFile("spendwall.toml")
        if let text = try ConfigFiles.read(file) {
            try config.apply(TOMLSource(file: "spendwall.toml", text: text), environment: env)
        }
        if let v = env["SPENDWALL_PROXY_ADDR"].nonEmpty {
            switch ListenAddress.parse(v) {
            case .success(let address): config.proxyListen = address
            case .failure(let error): throw ConfigError(file: "SPENDWALL_PROXY_ADDR", error.message)
            }
        }
        if let v = env["SPENDWALL_OPENAI_UPSTREAM"].nonEmpty { config.openAIUpstream = v }
        if let v = env["SPENDWALL_ANTHROPIC_UPSTREAM"].nonEmpty { config.anthropicUpstream = v }
        if let v = env["SPENDWALL_LOG_LEVEL"].nonEmpty { config.logLevel = v }
        return config
    }

    /// Applies the sections of a parsed spendwall.toml.
    mutating func apply(_ source: TOMLSource, environment env: [String: String] = [:]) throws(ConfigError) {
        let known = ["daemon", "policy", "pricing", "estimate", "proxy", "upstream", "privacy", "team"]
        for key in source.table.keys where !known.contains(key) {
            throw source.error(
                "unknown section [\(key)] (known: \(known.joined(separator: ", ")))",
                line: source.line(ofKey: "[\(key)"))
        }
        let reader = SectionReader(source: source)
        if let daemon = try reader.section("daemon", keys: ["max_body_bytes", "log_level"]) {
            if let v = try reader.int(daemon, "max_body_bytes", in: 1024...(1 << 30)) { maxBodyBytes = v }
            if let v = try reader.string(
                daemon, "log_level", oneOf: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
            {
                logLevel = v
            }
        }
        if let policy = try reader.section(
            "policy", keys: ["fail_mode", "default_max_tokens", "reservation_ttl", "approval_timeout"])
        {
            if let v = try reader.string(policy, "fail_mode", oneOf: FailMode.allCases.map(\.rawValue)) {
                failMode = FailMode(rawValue: v)!
            }
            if let v = try reader.int(policy, "default_max_tokens", in: 1...10_000_000) { defaultMaxTokens = Int64(v) }
            if let v = try reader.string(policy, "reservation_ttl") {
                guard let ms = Duration.milliseconds(parsing: v) else {
                    throw source.error(
                        "reservation_ttl must be a duration like \"10m\" or \"1h\", not \"\(v)\"",
                        line: source.line(ofKey: "reservation_ttl"))
                }
                reservationTTLMS = ms
            }
            if let v = try reader.string(policy, "approval_timeout") {
                guard let ms = Duration.milliseconds(parsing: v) else {
                    throw source.error(
                        "approval_timeout must be a duration like \"5m\" or \"30s\", not \"\(v)\"",
                        line: source.line(ofKey: "approval_timeout"))
                }
                approvalTimeoutMS = ms
            }
        }
        if let estimate = try reader.section("estimate", keys: ["anthropic_count_tokens"]) {
            if let value = estimate["anthropic_count_tokens"] {
                guard let flag = value.bool else {
                    throw source.error(
                        "anthropic_count_tokens must be true or false",
                        line: source.line(ofKey: "anthropic_count_tokens"))
                }
                anthropicCountTokens = flag
            }
        }
        if let pricing = try reader.section("pricing", keys: ["fallback_input_usd", "fallback_output_usd"]) {
            let input = try reader.dollars(pricing, "fallback_input_usd")
            let output = try reader.dollars(pricing, "fallback_output_usd")
            fallbackPrice = ModelPrice(
                inputPerMillion: input ?? fallbackPrice.inputPerMillion,
                outputPerMillion: output ?? fallbackPrice.outputPerMillion, source: "fallback")
        }
        if let proxy = try reader.section(
            "proxy", keys: ["listen", "connect_timeout", "read_timeout", "cost_headers", "openai_stream_usage"])
        {
            if let v = try reader.string(
                proxy, "openai_stream_usage", oneOf: OpenAIStreamUsage.allCases.map(\.rawValue))
            {
                openAIStreamUsage = OpenAIStreamUsage(rawValue: v)!
            }
            if let value = proxy["cost_headers"] {
                guard let flag = value.bool else {
                    throw source.error("cost_headers must be true or false", line: source.line(ofKey: "cost_headers"))
                }
                costHeaders = flag
            }
            for (key, label) in [("connect_timeout", "10s"), ("read_timeout", "10m")] {
                guard let v = try reader.string(proxy, key) else { continue }
                guard let ms = Duration.milliseconds(parsing: v) else {
                    throw source.error(
                        "\(key) must be a duration like \"\(label)\", not \"\(v)\"", line: source.line(ofKey: key))
                }
                if key == "connect_timeout" { upstreamConnectTimeoutMS = ms } else { upstreamReadTimeoutMS = ms }
            }
            if let v = try reader.string(proxy, "listen") {
                switch ListenAddress.parse(v) {
                case .success(let address): proxyListen = address
                case .failure(let error):
                    throw source.error("listen: \(error.message)", line: source.line(ofKey: "listen"))
                }
            }
        }
        if let privacy = try reader.section("privacy", keys: ["redact", "redact_values"]) {
            if let value = privacy["redact"] {
                let keys = value.array?.compactMap(\.string) ?? []
                guard let array = value.array, keys.count == array.count else {
                    throw source.error(
                        "redact must be a list of tag keys, like [\"customer_email\"]",
                        line: source.line(ofKey: "redact"))
                }
                redactTags = keys
            }
            if let pattern = try reader.string(privacy, "redact_values") {
                do {
                    _ = try Regex(pattern)
                } catch {
                    throw source.error(
                        "redact_values is not a valid regular expression: \(error)",
                        line: source.line(ofKey: "redact_values"))
                }
                redactValuePattern = pattern
            }
        }
        team = try readTeam(reader, environment: env)
        if let upstream = try reader.section("upstream", keys: ["openai", "anthropic"]) {
            if let v = try reader.string(upstream, "openai") { openAIUpstream = v }
            if let v = try reader.string(upstream, "anthropic") { anthropicUpstream = v }
        }
    }
}

extension SpendwallConfiguration {
    /// `[team]`: the database URL, the password (`SPENDWALL_TEAM_PASSWORD`, else `password_file`,
    /// else the URL's), the machine name, the offline mode and the lease tunables.
    func readTeam(_ reader: SectionReader, environment env: [String: String]) throws(ConfigError)
        -> TeamConfiguration?
    {
        let source = reader.source
        guard
            let table = try reader.section(
                "team", keys: ["database", "password_file", "machine", "offline", "lease_fraction", "lease_ttl"])
        else { return nil }
        guard let url = try reader.string(table, "database") else {
            throw source.error(
                "[team] needs database = \"postgres://user@host:5432/dbname\"", line: source.line(ofKey: "[team"))
        }
        var team = TeamConfiguration()
        switch TeamConfiguration.parseURL(url) {
        case .success(let parts):
            team.host = parts.host
            team.port = parts.port
            team.user = parts.user
            team.password = parts.password
            team.databaseName = parts.db
        case .failure(let reason):
            throw source.error(reason.message, line: source.line(ofKey: "database"))
        }
        if let path = try reader.string(table, "password_file") {
            switch TeamConfiguration.readPasswordFile(path) {
            case .success(let password): team.password = password
            case .failure(let reason): throw source.error(reason.message, line: source.line(ofKey: "password_file"))
            }
        }
        if let password = env["SPENDWALL_TEAM_PASSWORD"], !password.isEmpty { team.password = password }
        if let machine = try reader.string(table, "machine") {
            guard !machine.isEmpty, machine.count <= 200 else {
                throw source.error("machine must be a name of 1 to 200 characters", line: source.line(ofKey: "machine"))
            }
            team.machine = machine
        }
        if let v = try reader.string(table, "offline", oneOf: TeamConfiguration.OfflineMode.allCases.map(\.rawValue)) {
            team.offline = TeamConfiguration.OfflineMode(rawValue: v)!
        }
        if let value = table["lease_fraction"] {
            guard let fraction = value.number, fraction > 0, fraction <= 1 else {
                throw source.error(
                    "lease_fraction must be a fraction above 0 and at most 1 (0.1 = a tenth of the cap per lease)",
                    line: source.line(ofKey: "lease_fraction"))
            }
            team.leaseFraction = fraction
        }
        if let v = try reader.string(table, "lease_ttl") {
            guard let ms = Duration.milliseconds(parsing: v), ms >= 10_000 else {
                throw source.error(
                    "lease_ttl must be a duration of at least 10s, like \"2m\", not \"\(v)\"",
                    line: source.line(ofKey: "lease_ttl"))
            }
            team.leaseTTLMS = ms
        }
        return team
    }
}

/// Typed reads from the tables of a TOML file, with errors that name the key and line.
struct SectionReader {
    let source: TOMLSource

    func section(_ name: String, keys: [String]) throws(ConfigError) -> TOMLTable? {
        guard let value = source.table[name] else { return nil }
        guard let table = value.table else {
            throw source.error("[\(name)] must be a table", line: source.line(ofKey: name))
        }
        for key in table.keys where !keys.contains(key) {
            throw source.error(
                "unknown key \(key) in [\(name)] (known: \(keys.joined(separator: ", ")))",
                line: source.line(ofKey: key))
        }
        return table
    }

    func string(_ table: TOMLTable, _ key: String, oneOf allowed: [String]? = nil) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else {
            throw source.error("\(key) must be a string", line: source.line(ofKey: key))
        }
        if let allowed, !allowed.contains(string) {
            throw source.error(
                "\(key) must be one of \(allowed.joined(separator: ", ")), not \"\(string)\"",
                line: source.line(ofKey: key))
        }
        return string
    }

    func int(_ table: TOMLTable, _ key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let int = value.int, range.contains(int) else {
            throw source.error(
                "\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound)",
                line: source.line(ofKey: key))
        }
        return int
    }

    /// A dollar amount, as nano-USD.
    func dollars(_ table: TOMLTable, _ key: String) throws(ConfigError) -> NanoUSD? {
        guard let value = table[key] else { return nil }
        guard let number = value.number, let nanos = Money.nanos(fromDollars: number) else {
            throw source.error("\(key) must be a non-negative number of dollars", line: source.line(ofKey: key))
        }
        return nanos
    }
}
