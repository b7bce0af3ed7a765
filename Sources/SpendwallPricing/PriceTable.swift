import Foundation
import SpendwallCore

/// Model prices by name, resolved by longest prefix, with a fallback for unknown models.
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
    /// Entry names, longest first, for prefix resolution.
    private var byLength: [String]

    /// The default price for unknown models: deliberately expensive ($15 in / $75 out per
    /// million tokens), so an unknown model errs on the side of the cap.
    public static let defaultFallback = ModelPrice(
        inputPerMillion: 15_000_000_000, outputPerMillion: 75_000_000_000, source: "fallback")

    public init(entries: [String: ModelPrice], fallback: ModelPrice = PriceTable.defaultFallback) {
        self.entries = entries
        self.fallback = fallback
        self.byLength = entries.keys.sorted { $0.count != $1.count ? $0.count > $1.count : $0 < $1 }
    }

    /// Returns the table with `overrides` replacing or adding entries.
    public func merging(_ overrides: [String: ModelPrice]) -> PriceTable {
        PriceTable(entries: entries.merging(overrides) { _, new in new }, fallback: fallback)
    }

    /// The price for `model`: the longest entry that is a prefix of it, else the fallback.
    public func resolve(_ model: String) -> Resolution {
        if let exact = entries[model] { return Resolution(price: exact, entry: model) }
        for name in byLength where model.hasPrefix(name) {
            return Resolution(price: entries[name]!, entry: name)
        }
        return Resolution(price: fallback, entry: nil)
    }
}
