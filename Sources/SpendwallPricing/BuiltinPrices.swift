import Foundation
import SpendwallCore

/// The price table shipped with Spendwall (`Resources/prices.json`, with its sources and date).
public enum BuiltinPrices {
    /// The date the built-in table was last checked against the providers' pricing pages.
    public static var asOf: String { (try? document().asOf) ?? "unknown" }

    /// The built-in table.
    public static func table() throws -> PriceTable {
        let doc = try document()
        var entries: [String: ModelPrice] = [:]
        for (name, row) in doc.models {
            guard let price = row.price(source: "built-in", asOf: row.asOf ?? doc.asOf) else {
                throw SpendwallError(.internalError, "built-in price for \(name) is invalid")
            }
            entries[name] = price
        }
        return PriceTable(entries: entries)
    }

    struct Document: Decodable {
        var asOf: String
        var models: [String: PriceRow]
        enum CodingKeys: String, CodingKey {
            case asOf = "as_of"
            case models
        }
    }

    static func document() throws -> Document {
        guard let url = Bundle.module.url(forResource: "prices", withExtension: "json") else {
            throw SpendwallError(.internalError, "the built-in price table (prices.json) is missing")
        }
        return try JSONDecoder().decode(Document.self, from: Data(contentsOf: url))
    }
}

/// One model's prices as written in prices.json (USD per million tokens).
struct PriceRow: Decodable {
    struct Tier: Decodable {
        var aboveTokens: Int64
        var input: Double
        var output: Double
        var cacheRead: Double?
        var cacheWrite: Double?
        var cacheWrite1h: Double?
        enum CodingKeys: String, CodingKey {
            case aboveTokens = "above_tokens"
            case input, output
            case cacheRead = "cache_read"
            case cacheWrite = "cache_write"
            case cacheWrite1h = "cache_write_1h"
        }
    }
    var input: Double
    var output: Double
    var cacheRead: Double?
    var cacheWrite: Double?
    var cacheWrite1h: Double?
    var longContext: Tier?
    var batchPercent: Int64?
    var retired: String?
    var asOf: String?
    enum CodingKeys: String, CodingKey {
        case input, output
        case cacheRead = "cache_read"
        case cacheWrite = "cache_write"
        case cacheWrite1h = "cache_write_1h"
        case longContext = "long_context"
        case batchPercent = "batch_percent"
        case retired
        case asOf = "as_of"
    }

    func price(source: String, asOf: String?) -> ModelPrice? {
        guard let base = TokenRates(dollarsPerMillion: input, output, cacheRead, cacheWrite, cacheWrite1h) else {
            return nil
        }
        var price = ModelPrice(rates: base, source: source)
        if let tier = longContext {
            guard tier.aboveTokens > 0,
                let rates = TokenRates(
                    dollarsPerMillion: tier.input, tier.output, tier.cacheRead, tier.cacheWrite, tier.cacheWrite1h)
            else { return nil }
            price.longContext = LongContextPrice(thresholdTokens: tier.aboveTokens, rates: rates)
        }
        if let batchPercent {
            guard (0...100).contains(batchPercent) else { return nil }
            price.batchPercent = batchPercent
        }
        price.asOf = asOf
        price.retired = retired
        return price
    }
}
