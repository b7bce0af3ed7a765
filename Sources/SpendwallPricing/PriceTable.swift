import Foundation
import SpendwallCore

/// Model prices by name, with a fallback for unknown models.
///
/// A model resolves to its own entry, else to the entry it is a dated snapshot of
/// (`claude-sonnet-4-5-20250929`, `gpt-4o-2024-08-06`, `…@20250929`, `…-latest`), else to the
/// longest entry written as a prefix pattern (`"ft:gpt-4o-mini*"`, pricing.toml only), else to
/// the fallback. A bare prefix never matches on its own: `gpt-5.4` is not `gpt-5`, and pricing
/// it as such would be wrong by a factor of two.
public struct PriceTable: Sendable {
    /// The answer for one model name.
    public struct Resolution: Sendable, Hashable {
        public var price: ModelPrice
        /// The table entry that matched, or nil when the fallback priced it.
        public var entry: String?
        /// False when the model is unknown and the fallback price was used.
        public var priced: Bool { entry != nil }
    }

    public private(set) var entries: [String: ModelPrice]
    public var fallback: ModelPrice
    /// Prefix patterns (entries ending in `*`) without their star, longest first.
    private var patterns: [String]

    /// The default price for unknown models: deliberately expensive ($15 in / $75 out per
    /// million tokens), so an unknown model errs on the side of the cap.
    public static let defaultFallback = ModelPrice(
        inputPerMillion: 15_000_000_000, outputPerMillion: 75_000_000_000, source: "fallback")

    public init(entries: [String: ModelPrice], fallback: ModelPrice = PriceTable.defaultFallback) {
        self.entries = entries
        self.fallback = fallback
        self.patterns = entries.keys.filter { $0.hasSuffix("*") }.map { String($0.dropLast()) }
            .sorted { $0.count != $1.count ? $0.count > $1.count : $0 < $1 }
    }

    /// Returns the table with `overrides` replacing or adding entries.
    public func merging(_ overrides: [String: ModelPrice]) -> PriceTable {
        PriceTable(entries: entries.merging(overrides) { _, new in new }, fallback: fallback)
    }

    /// The price for `model`: its entry, its snapshot family's, a matching prefix pattern's,
    /// else the fallback.
    public func resolve(_ model: String) -> Resolution {
        if let exact = entries[model] { return Resolution(price: exact, entry: model) }
        if let family = Self.family(ofSnapshot: model), let price = entries[family] {
            return Resolution(price: price, entry: family)
        }
        for prefix in patterns where model.hasPrefix(prefix) {
            return Resolution(price: entries[prefix + "*"]!, entry: prefix + "*")
        }
        return Resolution(price: fallback, entry: nil)
    }

    /// The model a dated snapshot or `-latest` alias names: `gpt-4o-2024-08-06` → `gpt-4o`,
    /// `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`, `claude-3-7-sonnet@20250219` →
    /// `claude-3-7-sonnet`, `claude-3-5-haiku-latest` → `claude-3-5-haiku`. Nil for any other name.
    static func family(ofSnapshot model: String) -> String? {
        let bytes = Array(model.utf8)
        func digits(_ range: Range<Int>) -> Bool {
            range.lowerBound >= 0 && range.upperBound <= bytes.count
                && bytes[range].allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        }
        let n = bytes.count
        if model.hasSuffix("-latest"), n > 7 { return String(model.dropLast(7)) }
        // -YYYYMMDD or @YYYYMMDD
        if n > 9, digits(n - 8..<n), bytes[n - 9] == UInt8(ascii: "-") || bytes[n - 9] == UInt8(ascii: "@") {
            return String(model.dropLast(9))
        }
        // -YYYY-MM-DD
        if n > 11, digits(n - 10..<n - 6), digits(n - 5..<n - 3), digits(n - 2..<n),
            bytes[n - 11] == UInt8(ascii: "-"), bytes[n - 6] == UInt8(ascii: "-"), bytes[n - 3] == UInt8(ascii: "-")
        {
            return String(model.dropLast(11))
        }
        return nil
    }
}
