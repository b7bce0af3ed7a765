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
            guard
                let price = ModelPrice(
                    dollarsPerMillionInput: row.input, output: row.output,
                    cacheRead: row.cacheRead, cacheWrite: row.cacheWrite, source: "built-in")
            else {
                throw SpendwallError(.internalError, "built-in price for \(name) is invalid")
            }
            entries[name] = price
        }
        return PriceTable(entries: entries)
    }

    struct Document: Decodable {
        struct Row: Decodable {
            var input: Double
            var output: Double
            var cacheRead: Double?
            var cacheWrite: Double?
            enum CodingKeys: String, CodingKey {
                case input, output
                case cacheRead = "cache_read"
                case cacheWrite = "cache_write"
            }
        }
        var asOf: String
        var models: [String: Row]
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
