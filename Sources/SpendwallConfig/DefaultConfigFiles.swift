import Foundation

/// The files `spendwall init` writes: every default spelled out, nothing enabled that costs
/// the user a surprise.
public enum DefaultConfigFiles {
    /// What `init` did with one file.
    public enum Result: Sendable, Equatable {
        case written
        case keptExisting
    }

    /// Writes each default file that does not exist yet (never clobbers) and creates the data
    /// directory. Files are created 0600 in a 0700 directory.
    public static func write(paths: SpendwallPaths) throws -> [(file: String, result: Result)] {
        let fm = FileManager.default
        for dir in [paths.configDirectory, paths.dataDirectory] {
            try fm.createDirectory(
                atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        var results: [(String, Result)] = []
        for (name, text) in contents {
            let path = paths.configFile(name)
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            if fd < 0 {
                if errno == EEXIST {
                    results.append((path, .keptExisting))
                    continue
                }
                throw ConfigError(file: name, "cannot create \(path): \(String(cString: strerror(errno)))")
            }
            let bytes = Array(text.utf8)
            let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard written == bytes.count else { throw ConfigError(file: name, "short write to \(path)") }
            results.append((path, .written))
        }
        return results
    }

    public static let contents: [(String, String)] = [
        ("spendwall.toml", spendwall),
        ("caps.toml", caps),
        ("labels.toml", labels),
        ("pricing.toml", pricing),
    ]

    static let spendwall = """
        # Spendwall daemon settings. Every value shown is the default.

        [daemon]
        # Largest request body the socket API accepts, in bytes.
        # max_body_bytes = 8388608
        # log_level = "info"

        [policy]
        # What the SDKs do when the daemon cannot be reached: "open" lets calls through and
        # spools their reports; "closed" refuses them.
        # fail_mode = "open"
        # Output tokens reserved for a request that sets no max_tokens.
        # default_max_tokens = 4096
        # How long a reservation waits for its report before it is charged as "unreported".
        # reservation_ttl = "10m"
        # How long a call held by an action = "approve" cap waits for a person; then it is denied.
        # approval_timeout = "5m"

        [pricing]
        # Price (USD per million tokens) for models the table does not know. Such calls are
        # flagged priced = false. Deliberately expensive, so unknown models err toward the cap.
        # fallback_input_usd = 15.0
        # fallback_output_usd = 75.0

        [proxy]
        # Loopback listener for the proxy and panel (also SPENDWALL_PROXY_ADDR).
        # listen = "127.0.0.1:8787"

        [upstream]
        # openai = "https://api.openai.com"
        # anthropic = "https://api.anthropic.com"

        [privacy]
        # Tag keys whose values are stored only as a keyed hash ("redacted:…"): rows still group
        # by them, the value itself never reaches the disk. The key is redact.key in the data dir.
        # redact = ["customer_email"]
        # And any tag value matching this regular expression:
        # redact_values = '\\d{3}-\\d{2}-\\d{4}'

        """

    static let caps = """
        # Spending caps. Each [[cap]] covers the calls its scope matches, over a window:
        #   scope  = { agent = "A" } | { app = "X" } | { session = "S" } | { model = "M" }
        #            | { tag = { customer = "acme" } } | { global = true }
        #            A value of "*" gives every agent/app/session/... its own budget;
        #            "prefix*" shares one budget among all values with that prefix.
        #   window = "1h" | "1d" | "7d" | "30d" (rolling) | "day" | "week" | "month" (calendar, local time)
        #   limit_usd and/or limit_tokens
        #   action = "block" (refuse calls that would exceed it) | "alert" (allow, and warn)
        #            | "approve" (hold the call until `spendwall approvals approve|deny ID`)
        #   warn_at = 0.8 (fraction of the limit that raises a warning)
        #
        # [[cap]]
        # name = "everything-daily"
        # scope = { global = true }
        # window = "day"
        # limit_usd = 20.0
        # action = "block"

        """

    static var labels: String {
        var text = """
            # Friendly app names. The daemon reads /proc/PID/exe of every caller (and, for
            # interpreters, the script it runs) and takes the first rule whose globs match.
            # exe and script are shell globs; a rule may give either or both.

            """
        for rule in LabelsFile.defaults {
            text += "\n[[label]]\n"
            if let exe = rule.exe { text += "exe = \"\(exe)\"\n" }
            if let script = rule.script { text += "script = \"\(script)\"\n" }
            text += "app = \"\(rule.app)\"\n"
        }
        return text
    }

    static let pricing = """
        # Price overrides and additions (USD per million tokens). Model names match by longest
        # prefix, so "my-model" also prices "my-model-2025-01-01".
        #
        # [models."my-finetune"]
        # input = 3.0
        # output = 12.0
        # cache_read = 1.5     # defaults to input
        # cache_write = 3.75   # defaults to input

        """
}
