import SpendwallCore

/// The price of one model, per kind of token, in nano-USD per million tokens
/// (so `$2.50 / MTok` is `2_500_000_000`): every published price is an exact integer here.
public struct ModelPrice: Sendable, Hashable {
    public var inputPerMillion: Int64
    public var outputPerMillion: Int64
    public var cacheReadPerMillion: Int64
    public var cacheWritePerMillion: Int64
    /// Where the price comes from: `built-in` or the overriding file.
    public var source: String

    public init(
        inputPerMillion: Int64, outputPerMillion: Int64,
        cacheReadPerMillion: Int64? = nil, cacheWritePerMillion: Int64? = nil,
        source: String = "built-in"
    ) {
        self.inputPerMillion = inputPerMillion
        self.outputPerMillion = outputPerMillion
        self.cacheReadPerMillion = cacheReadPerMillion ?? inputPerMillion
        self.cacheWritePerMillion = cacheWritePerMillion ?? inputPerMillion
        self.source = source
    }

    /// Builds a price from dollars per million tokens, as written in price files.
    public init?(
        dollarsPerMillionInput input: Double, output: Double,
        cacheRead: Double? = nil, cacheWrite: Double? = nil, source: String
    ) {
        guard let i = Money.nanos(fromDollars: input), let o = Money.nanos(fromDollars: output) else {
            return nil
        }
        var cr: Int64?
        var cw: Int64?
        if let cacheRead {
            guard let v = Money.nanos(fromDollars: cacheRead) else { return nil }
            cr = v
        }
        if let cacheWrite {
            guard let v = Money.nanos(fromDollars: cacheWrite) else { return nil }
            cw = v
        }
        self.init(
            inputPerMillion: i, outputPerMillion: o, cacheReadPerMillion: cr, cacheWritePerMillion: cw,
            source: source)
    }

    /// The exact cost of a call's usage, rounded up to the next nano-USD.
    public func cost(of usage: Usage) -> NanoUSD {
        let sum =
            Int128(usage.inputTokens) * Int128(inputPerMillion)
            + Int128(usage.outputTokens) * Int128(outputPerMillion)
            + Int128(usage.cacheReadTokens) * Int128(cacheReadPerMillion)
            + Int128(usage.cacheWriteTokens) * Int128(cacheWritePerMillion)
        let nanos = (sum + 999_999) / 1_000_000
        return nanos > Int128(Int64.max) ? Int64.max : Int64(nanos)
    }
}
