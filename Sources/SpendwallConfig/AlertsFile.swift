import Foundation
import SpendwallCore
import SpendwallStripe
import TOMLKit

/// Loads and validates alerts.toml. Secrets come from the file itself (which must then be
/// private, mode 0600), from an environment variable (`*_env`), or from a private file
/// (`*_file`, mode 0600).
public enum AlertsFile {
    /// Loads alerts.toml from the config directory; a missing file means no alerts and no Stripe.
    public static func load(
        paths: SpendwallPaths, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> AlertsConfiguration {
        let path = paths.configFile("alerts.toml")
        guard let text = try ConfigFiles.read(path) else { return AlertsConfiguration() }
        return try parse(text, environment: environment, filePrivate: isPrivate(path))
    }

    static func isPrivate(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && Int(info.st_mode) & 0o077 == 0
    }

    /// Parses the text of an alerts.toml. `filePrivate` says whether the file itself is 0600
    /// (inline secrets are refused otherwise).
    public static func parse(
        _ text: String, environment: [String: String] = [:], filePrivate: Bool = true
    ) throws(ConfigError) -> AlertsConfiguration {
        let source = try TOMLSource(file: "alerts.toml", text: text)
        var config = AlertsConfiguration()
        for key in source.table.keys where !["transport", "route", "dispatch", "stripe"].contains(key) {
            throw source.error(
                "unknown key \(key) (known: [dispatch], [[transport]], [[route]], [stripe])",
                line: source.line(ofKey: key))
        }
        func secret(
            _ table: TOMLTable, _ key: String, inline: Bool, fail: (String, String) -> ConfigError
        ) throws(ConfigError) -> Secret? {
            let given = [key, key + "_env", key + "_file"].filter { table[$0] != nil }
            guard given.count <= 1 else { throw fail("give only one of \(given.joined(separator: ", "))", given[1]) }
            if let v = table[key] {
                guard let s = v.string, !s.isEmpty else { throw fail("\(key) must be a non-empty string", key) }
                if inline && !filePrivate {
                    throw fail(
                        "\(key) is a secret written in alerts.toml, which must then be private: run `chmod 600` on it, or use \(key)_env / \(key)_file",
                        key)
                }
                return Secret(s)
            }
            if let v = table[key + "_env"] {
                guard let name = v.string, !name.isEmpty else {
                    throw fail("\(key)_env must name a variable", key + "_env")
                }
                guard let value = environment[name], !value.isEmpty else {
                    throw fail("\(key)_env names \(name), which is not set in the daemon's environment", key + "_env")
                }
                return Secret(value)
            }
            if let v = table[key + "_file"] {
                guard let path = v.string, !path.isEmpty else {
                    throw fail("\(key)_file must be a path", key + "_file")
                }
                guard isPrivate(path) || !FileManager.default.fileExists(atPath: path) else {
                    throw fail("\(path) holds a secret and must be private: run `chmod 600 \(path)`", key + "_file")
                }
                guard let data = FileManager.default.contents(atPath: path),
                    let value = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
                    !value.isEmpty
                else { throw fail("cannot read the secret in \(path)", key + "_file") }
                return Secret(value)
            }
            return nil
        }
        func duration(_ value: TOMLValueConvertible, fail: () -> ConfigError) throws(ConfigError) -> Int64 {
            if let ms = value.int, ms >= 0 { return Int64(ms) }
            if let text = value.string {
                if text.hasSuffix("ms"), let ms = Int64(text.dropLast(2)), ms >= 0 { return ms }
                if let ms = SpendwallCore.Duration.milliseconds(parsing: text) { return ms }
            }
            throw fail()
        }

        if let value = source.table["dispatch"] {
            guard let table = value.table else {
                throw source.error("dispatch must be a table", line: source.line(ofKey: "dispatch"))
            }
            let known = [
                "base_delay", "max_delay", "max_attempts", "jitter", "rate_limit_window", "queue_limit", "panel_url",
            ]
            func fail(_ m: String, _ key: String) -> ConfigError {
                source.error("[dispatch] \(m)", line: source.line(ofTable: ["[dispatch]"], key: key))
            }
            for key in table.keys where !known.contains(key) {
                throw fail("unknown key \(key) (known: \(known.joined(separator: ", ")))", key)
            }
            var d = AlertDispatchSettings()
            if let v = table["base_delay"] {
                d.baseDelayMS = try duration(v) {
                    fail("base_delay must be a duration like \"1s\" or \"250ms\"", "base_delay")
                }
            }
            if let v = table["max_delay"] {
                d.maxDelayMS = try duration(v) { fail("max_delay must be a duration like \"5m\"", "max_delay") }
            }
            if let v = table["rate_limit_window"] {
                d.rateLimitWindowMS = try duration(v) {
                    fail("rate_limit_window must be a duration like \"1h\"", "rate_limit_window")
                }
            }
            if let v = table["max_attempts"] {
                guard let n = v.int, (1...100).contains(n) else {
                    throw fail("max_attempts must be 1 to 100", "max_attempts")
                }
                d.maxAttempts = n
            }
            if let v = table["queue_limit"] {
                guard let n = v.int, (1...1_000_000).contains(n) else {
                    throw fail("queue_limit must be 1 to 1000000", "queue_limit")
                }
                d.queueLimit = n
            }
            if let v = table["jitter"] {
                guard let j = v.number, (0...1).contains(j) else {
                    throw fail("jitter must be a number from 0 to 1", "jitter")
                }
                d.jitter = j
            }
            if let v = table["panel_url"] {
                guard let s = v.string else { throw fail("panel_url must be a string", "panel_url") }
                d.panelURL = s
            }
            config.dispatch = d
        }

        if let value = source.table["transport"] {
            guard let array = value.array else {
                throw source.error(
                    "transport must be written as [[transport]] tables", line: source.line(ofKey: "transport"))
            }
            for (index, element) in array.enumerated() {
                func fail(_ message: String, _ key: String? = nil) -> ConfigError {
                    source.error(message, line: source.line(ofArrayTable: "transport", index: index, key: key))
                }
                guard let table = element.table else { throw fail("each transport must be a table") }
                guard let name = table["name"]?.string, !name.isEmpty else {
                    throw fail("every transport needs a name = \"...\"", "name")
                }
                guard !config.transports.contains(where: { $0.name == name }) else {
                    throw fail("two transports are named \"\(name)\"", "name")
                }
                guard let typeText = table["type"]?.string,
                    let kind = AlertTransportConfiguration.Kind(rawValue: typeText)
                else { throw fail("transport \"\(name)\": type must be \"slack\", \"webhook\" or \"email\"", "type") }
                var known = ["name", "type", "url", "url_env", "url_file", "timeout"]
                switch kind {
                case .slack: break
                case .webhook: known += ["secret", "secret_env", "secret_file", "signature_header"]
                case .email:
                    known += [
                        "from", "to", "username", "password", "password_env", "password_file", "starttls", "ca_file",
                    ]
                }
                for key in table.keys where !known.contains(key) {
                    throw fail(
                        "transport \"\(name)\": unknown key \(key) for a \(kind.rawValue) transport (known: \(known.joined(separator: ", ")))",
                        key)
                }
                let failing = { (m: String, k: String) in fail("transport \"\(name)\": \(m)", k) }
                // A Slack incoming-webhook URL is itself the credential.
                guard let url = try secret(table, "url", inline: kind == .slack, fail: failing) else {
                    throw fail("transport \"\(name)\": url (or url_env, url_file) is required", "url")
                }
                let lowered = url.value.lowercased()
                switch kind {
                case .slack, .webhook:
                    guard lowered.hasPrefix("https://") || lowered.hasPrefix("http://") else {
                        throw fail("transport \"\(name)\": url must start with https:// or http://", "url")
                    }
                case .email:
                    guard lowered.hasPrefix("smtp://") || lowered.hasPrefix("smtps://") else {
                        throw fail(
                            "transport \"\(name)\": url must be smtp://HOST:PORT (STARTTLS) or smtps://HOST:PORT", "url"
                        )
                    }
                }
                var transport = AlertTransportConfiguration(name: name, kind: kind, url: url)
                if let v = table["timeout"] {
                    transport.timeoutMS = try duration(v) {
                        failing("timeout must be a duration like \"10s\"", "timeout")
                    }
                }
                transport.signingSecret = try secret(table, "secret", inline: true, fail: failing)
                if let v = table["signature_header"] {
                    guard let s = v.string, !s.isEmpty, s.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
                        throw failing("signature_header must be a header name", "signature_header")
                    }
                    transport.signatureHeader = s
                }
                if kind == .email {
                    guard let from = table["from"]?.string, from.contains("@") else {
                        throw failing("from = \"spendwall@example.com\" is required", "from")
                    }
                    transport.from = from
                    let to = table["to"]?.array?.compactMap { $0.string } ?? table["to"]?.string.map { [$0] } ?? []
                    guard !to.isEmpty, to.allSatisfy({ $0.contains("@") }) else {
                        throw failing("to = [\"ops@example.com\"] is required", "to")
                    }
                    transport.to = to
                    if let v = table["username"] {
                        guard let s = v.string else { throw failing("username must be a string", "username") }
                        transport.username = s
                    }
                    transport.password = try secret(table, "password", inline: true, fail: failing)
                    if transport.password != nil && transport.username == nil {
                        throw failing("a password needs a username", "username")
                    }
                    if let v = table["starttls"] {
                        guard let b = v.bool else { throw failing("starttls must be true or false", "starttls") }
                        transport.requireTLS = b
                    }
                    if let v = table["ca_file"] {
                        guard let s = v.string, FileManager.default.fileExists(atPath: s) else {
                            throw failing("ca_file must name an existing PEM file", "ca_file")
                        }
                        transport.caFile = s
                    }
                }
                config.transports.append(transport)
            }
        }

        if let value = source.table["route"] {
            guard let array = value.array else {
                throw source.error("route must be written as [[route]] tables", line: source.line(ofKey: "route"))
            }
            for (index, element) in array.enumerated() {
                func fail(_ message: String, _ key: String? = nil) -> ConfigError {
                    source.error(message, line: source.line(ofArrayTable: "route", index: index, key: key))
                }
                guard let table = element.table else { throw fail("each route must be a table") }
                for key in table.keys where !["kinds", "transports"].contains(key) {
                    throw fail("unknown key \(key) in a route (known: kinds, transports)", key)
                }
                let kinds = table["kinds"]?.array?.compactMap { $0.string } ?? []
                guard !kinds.isEmpty else { throw fail("a route needs kinds = [\"CapBlocked\", ...]", "kinds") }
                for kind in kinds where kind != "*" && !AlertsConfiguration.routableKinds.contains(kind) {
                    throw fail(
                        "unknown event kind \(kind) (known: \(AlertsConfiguration.routableKinds.sorted().joined(separator: ", ")), or \"*\")",
                        "kinds")
                }
                let names = table["transports"]?.array?.compactMap { $0.string } ?? []
                guard !names.isEmpty else { throw fail("a route needs transports = [\"name\", ...]", "transports") }
                for name in names where !config.transports.contains(where: { $0.name == name }) {
                    throw fail("no transport is named \"\(name)\" (define it with [[transport]])", "transports")
                }
                config.routes.append(AlertRoute(kinds: kinds, transports: names))
            }
        }

        if let value = source.table["stripe"] {
            guard let table = value.table else {
                throw source.error("stripe must be a table", line: source.line(ofKey: "stripe"))
            }
            func fail(_ m: String, _ key: String) -> ConfigError {
                source.error("[stripe] \(m)", line: source.line(ofTable: ["[stripe]"], key: key))
            }
            let known = [
                "secret", "secret_env", "secret_file", "tolerance", "drift_threshold_usd", "drift_threshold_percent",
                "map",
            ]
            for key in table.keys where !known.contains(key) {
                throw fail("unknown key \(key) (known: \(known.joined(separator: ", ")))", key)
            }
            var s = StripeSettings()
            s.secret = try secret(table, "secret", inline: true, fail: fail)
            if let v = table["tolerance"] {
                let ms = try duration(v) {
                    fail("tolerance must be a duration like \"5m\" or a number of ms", "tolerance")
                }
                s.toleranceSeconds = ms / 1000
            }
            if let v = table["drift_threshold_usd"] {
                guard let d = v.number, let n = Money.nanos(fromDollars: d) else {
                    throw fail("drift_threshold_usd must be a non-negative number", "drift_threshold_usd")
                }
                s.driftThresholdNanoUSD = n
            }
            if let v = table["drift_threshold_percent"] {
                guard let p = v.number, p >= 0 else {
                    throw fail("drift_threshold_percent must be a non-negative number", "drift_threshold_percent")
                }
                s.driftThresholdFraction = p / 100
            }
            if let v = table["map"] {
                guard let array = v.array else { throw fail("map must be written as [[stripe.map]] tables", "map") }
                var rules: [InvoiceMapping.Rule] = []
                for (index, element) in array.enumerated() {
                    func failMap(_ m: String, _ key: String? = nil) -> ConfigError {
                        source.error(
                            "[[stripe.map]] \(m)", line: source.line(ofArrayTable: "stripe.map", index: index, key: key)
                        )
                    }
                    guard let t = element.table else { throw failMap("must be a table") }
                    for key in t.keys where !["product", "description", "provider", "period"].contains(key) {
                        throw failMap("unknown key \(key) (known: product, description, provider, period)", key)
                    }
                    let product = t["product"]?.string
                    let description = t["description"]?.string
                    guard product != nil || description != nil else {
                        throw failMap("needs product = \"prod_...\" or description = \"*glob*\"")
                    }
                    guard let provider = t["provider"]?.string, ["openai", "anthropic"].contains(provider) else {
                        throw failMap("provider must be \"openai\" or \"anthropic\"", "provider")
                    }
                    var period = InvoiceMapping.PeriodRule.lineStart
                    if let p = t["period"] {
                        guard let text = p.string, let rule = InvoiceMapping.PeriodRule(rawValue: text) else {
                            throw failMap(
                                "period must be \"line_start\", \"invoice_created\" or \"previous_month\"", "period")
                        }
                        period = rule
                    }
                    rules.append(.init(product: product, description: description, provider: provider, period: period))
                }
                s.mapping = InvoiceMapping(rules: rules)
            }
            config.stripe = s
        }
        return config
    }
}
