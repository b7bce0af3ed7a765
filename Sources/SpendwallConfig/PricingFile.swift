import SpendwallCore
import SpendwallPricing
import TOMLKit

/// pricing.toml: per-model price overrides and additions.
///
/// ```toml
/// [models."my-finetune"]
/// input = 3.0           # USD per million tokens
/// output = 12.0
/// cache_read = 1.5      # optional, defaults to input
/// cache_write = 3.75    # optional, defaults to input (5-minute cache writes)
/// cache_write_1h = 6.0  # optional, defaults to cache_write (Anthropic 1-hour cache writes)
/// batch_percent = 50    # optional: the share a batch call pays (default 50)
/// long_context = { above_tokens = 200000, input = 6.0, output = 22.5 }  # optional tier
/// as_of = "2026-11-30"  # optional: when you checked the price
///
/// [models."ft:gpt-4o-mini*"]   # a trailing * matches any name that starts with the rest
/// input = 0.3
/// output = 1.2
/// ```
public enum PricingFile {
    static let rateKeys = ["input", "output", "cache_read", "cache_write", "cache_write_1h"]
    static let knownKeys = rateKeys + ["batch_percent", "long_context", "as_of", "retired"]

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
            let headers = ["[models.\"\(name)\"]", "[models.\(name)]", "[models.'\(name)']"]
            let line = source.line(ofTable: headers)
            func lineOf(_ key: String) -> Int? { source.line(ofTable: headers, key: key) }
            guard let row = models[name]?.table else {
                throw source.error("models.\(name) must be a table", line: line)
            }
            for key in row.keys where !knownKeys.contains(key) {
                throw source.error(
                    "unknown key \(key) for model \(name) (known: \(knownKeys.joined(separator: ", ")))",
                    line: lineOf(key))
            }
            let base = try rates(row, what: "model \(name)", source: source, line: lineOf)
            var price = ModelPrice(rates: base, source: file)
            if let tierValue = row["long_context"] {
                guard let tier = tierValue.table else {
                    throw source.error(
                        "model \(name): long_context must be a table like { above_tokens = 200000, input = 6.0,"
                            + " output = 22.5 }", line: lineOf("long_context"))
                }
                for key in tier.keys where !(rateKeys + ["above_tokens"]).contains(key) {
                    throw source.error(
                        "unknown key \(key) in long_context of model \(name) (known: above_tokens, "
                            + rateKeys.joined(separator: ", ") + ")", line: lineOf("long_context"))
                }
                guard let above = tier["above_tokens"]?.int, above > 0 else {
                    throw source.error(
                        "model \(name): long_context needs above_tokens, a whole number of prompt tokens above 0",
                        line: lineOf("long_context"))
                }
                let tierRates = try rates(
                    tier, what: "long_context of model \(name)", source: source, line: { _ in lineOf("long_context") })
                price.longContext = LongContextPrice(thresholdTokens: Int64(above), rates: tierRates)
            }
            if let value = row["batch_percent"] {
                guard let percent = value.int, (0...100).contains(percent) else {
                    throw source.error(
                        "model \(name): batch_percent must be a whole number from 0 to 100",
                        line: lineOf("batch_percent"))
                }
                price.batchPercent = Int64(percent)
            }
            for key in ["as_of", "retired"] where row[key] != nil && row[key]?.string == nil {
                throw source.error("model \(name): \(key) must be a date string like \"2026-11-30\"", line: lineOf(key))
            }
            price.asOf = row["as_of"]?.string
            price.retired = row["retired"]?.string
            prices[name] = price
        }
        return prices
    }

    private static func rates(
        _ row: TOMLTable, what: String, source: TOMLSource, line: (String) -> Int?
    ) throws(ConfigError) -> TokenRates {
        for key in rateKeys where row[key] != nil && row[key]?.number == nil {
            throw source.error("\(what): \(key) must be a number (USD per million tokens)", line: line(key))
        }
        guard let input = row["input"]?.number, let output = row["output"]?.number else {
            throw source.error("\(what) needs input and output prices (USD per million tokens)", line: line("input"))
        }
        guard
            let rates = TokenRates(
                dollarsPerMillion: input, output, row["cache_read"]?.number, row["cache_write"]?.number,
                row["cache_write_1h"]?.number)
        else { throw source.error("\(what): prices must be non-negative numbers", line: line("input")) }
        return rates
    }
}
