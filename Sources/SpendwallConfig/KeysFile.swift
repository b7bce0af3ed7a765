import Foundation
import TOMLKit

/// Provider API keys the proxy injects for clients that send a placeholder instead (opt-in):
/// `keys.toml` in the config directory, which must be private (mode 0600), or the environment
/// (`SPENDWALL_OPENAI_KEY`, `SPENDWALL_ANTHROPIC_KEY`, which win). The keys are never written
/// to the ledger, the log or an error message; `description` hides them.
public struct ProviderKeys: Sendable, Hashable, CustomStringConvertible {
    public var openAI: String?
    public var anthropic: String?
    /// The key a client sends to ask for injection (default `spendwall`).
    public var placeholder: String

    public init(openAI: String? = nil, anthropic: String? = nil, placeholder: String = "spendwall") {
        self.openAI = openAI
        self.anthropic = anthropic
        self.placeholder = placeholder
    }

    public var isEmpty: Bool { openAI == nil && anthropic == nil }

    public var description: String {
        "ProviderKeys(openai: \(openAI == nil ? "none" : "set"), anthropic: \(anthropic == nil ? "none" : "set"))"
    }

    /// Loads keys.toml (absent: no keys) and the environment.
    public static func load(
        paths: SpendwallPaths, environment env: [String: String] = ProcessInfo.processInfo.environment
    )
        throws(ConfigError) -> ProviderKeys
    {
        let path = paths.configFile("keys.toml")
        var keys = ProviderKeys()
        if let text = try ConfigFiles.read(path) {
            var info = stat()
            if stat(path, &info) == 0, Int(info.st_mode) & 0o077 != 0 {
                throw ConfigError(
                    file: "keys.toml",
                    "keys.toml holds API keys and must be private: run `chmod 600 \(path)` (its mode is \(String(Int(info.st_mode) & 0o777, radix: 8)))"
                )
            }
            let source = try TOMLSource(file: "keys.toml", text: text)
            for key in source.table.keys where !["openai", "anthropic", "placeholder"].contains(key) {
                throw source.error(
                    "unknown key \(key) (known: openai, anthropic, placeholder)", line: source.line(ofKey: key))
            }
            func string(_ key: String) throws(ConfigError) -> String? {
                guard let value = source.table[key] else { return nil }
                guard let text = value.string, !text.isEmpty else {
                    throw source.error("\(key) must be a non-empty string", line: source.line(ofKey: key))
                }
                return text
            }
            keys.openAI = try string("openai")
            keys.anthropic = try string("anthropic")
            if let placeholder = try string("placeholder") { keys.placeholder = placeholder }
        }
        if let v = env["SPENDWALL_OPENAI_KEY"].nonEmpty { keys.openAI = v }
        if let v = env["SPENDWALL_ANTHROPIC_KEY"].nonEmpty { keys.anthropic = v }
        return keys
    }
}
