import SpendwallCore
import SpendwallPricing

/// pricing.toml: per-model price overrides and additions.
///
/// ```toml
/// [models."my-finetune"]
/// input = 3.0        # USD per million tokens
/// output = 12.0
/// cache_read = 1.5   # optional, defaults to input
/// cache_write = 3.75 # optional, defaults to input
/// ```
public enum PricingFile {
    public static func load(paths: SpendwallPaths) throws(ConfigError) -> [String: ModelPrice] {
        guard let text = try ConfigFiles.read(paths.configFile("pricing.toml")) else { return [:] }
        return try parse(text)
    }

    public static func parse(_ text: String, file: String = "pricing.toml") throws(ConfigError) -> [String: ModelPrice]
    {
        let source = try TOMLSource(file: file, text: text)
        for key in source.table.keys where key != "models" {
            throw source.error(
                "unknown key \(key): prices are written as [models.\"NAME\"] tables", line: source.line(ofKey: key))
        }
        guard let models = source.table["models"]?.table else { return [:] }
        var prices: [String: ModelPrice] = [:]
        for name in models.keys {
            let line = source.line(ofKey: "[models.\"\(name)\"]") ?? source.line(ofKey: "[models.\(name)]")
            guard let row = models[name]?.table else {
                throw source.error("models.\(name) must be a table", line: line)
            }
            for key in row.keys where !["input", "output", "cache_read", "cache_write"].contains(key) {
                throw source.error(
                    "unknown key \(key) for model \(name) (known: input, output, cache_read, cache_write)", line: line)
            }
            guard let input = row["input"]?.number, let output = row["output"]?.number else {
                throw source.error("model \(name) needs input and output prices (USD per million tokens)", line: line)
            }
            guard
                let price = ModelPrice(
                    dollarsPerMillionInput: input, output: output, cacheRead: row["cache_read"]?.number,
                    cacheWrite: row["cache_write"]?.number, source: file)
            else { throw source.error("model \(name): prices must be non-negative numbers", line: line) }
            if (row["cache_read"] != nil && row["cache_read"]?.number == nil)
                || (row["cache_write"] != nil && row["cache_write"]?.number == nil)
            {
                throw source.error("model \(name): cache prices must be numbers", line: line)
            }
            prices[name] = price
        }
        return prices
    }
}
