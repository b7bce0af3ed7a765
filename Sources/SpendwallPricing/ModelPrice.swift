import SpendwallCore

/// The price of one model, per kind of token, in nano-USD per million tokens
/// (so `$2.50 / MTok` is `2_500_000_000`): every published price is an exact integer here.
///
/// Beyond the four base rates a price may carry a 1-hour cache-write rate (Anthropic), a
/// long-context tier (every token of a call whose prompt exceeds a threshold is billed at the
/// tier's rates, as Anthropic and OpenAI bill their long-context models), and the share of the
/// price a batch (or OpenAI `flex`) call pays.
public struct ModelPrice: Sendable, Hashable, Codable {
    public var inputPerMillion: Int64
    public var outputPerMillion: Int64
    public var cacheReadPerMillion: Int64
    /// Cache writes with the default (5-minute) lifetime.
    public var cacheWritePerMillion: Int64
    /// Cache writes with a 1-hour lifetime.
    public var cacheWrite1hPerMillion: Int64
    /// Rates for calls whose prompt is above a threshold, if the model has such a tier.
    public var longContext: LongContextPrice?
    /// Percent of the price a batch call pays (50 for both providers' batch APIs).
    public var batchPercent: Int64
    /// Where the price comes from: `built-in` or the overriding file.
    public var source: String
    /// The date the price was last checked (`YYYY-MM-DD`), if known.
    public var asOf: String?
    /// The date the provider retired the model, if it has: kept so old ledger rows stay priced.
    public var retired: String?

    public init(
        inputPerMillion: Int64, outputPerMillion: Int64,
        cacheReadPerMillion: Int64? = nil, cacheWritePerMillion: Int64? = nil,
        cacheWrite1hPerMillion: Int64? = nil, longContext: LongContextPrice? = nil, batchPercent: Int64 = 50,
        source: String = "built-in", asOf: String? = nil, retired: String? = nil
    ) {
        self.inputPerMillion = inputPerMillion
        self.outputPerMillion = outputPerMillion
        self.cacheReadPerMillion = cacheReadPerMillion ?? inputPerMillion
        self.cacheWritePerMillion = cacheWritePerMillion ?? inputPerMillion
        self.cacheWrite1hPerMillion = cacheWrite1hPerMillion ?? cacheWritePerMillion ?? inputPerMillion
        self.longContext = longContext
        self.batchPercent = batchPercent
        self.source = source
        self.asOf = asOf
        self.retired = retired
    }

    /// Builds a price from dollars per million tokens, as written in price files.
    public init?(
        dollarsPerMillionInput input: Double, output: Double,
        cacheRead: Double? = nil, cacheWrite: Double? = nil, cacheWrite1h: Double? = nil, source: String
    ) {
        guard let rates = TokenRates(dollarsPerMillion: input, output, cacheRead, cacheWrite, cacheWrite1h) else {
            return nil
        }
        self.init(rates: rates, source: source)
    }

    /// A price with these base rates.
    public init(rates: TokenRates, source: String = "built-in") {
        self.init(
            inputPerMillion: rates.input, outputPerMillion: rates.output, cacheReadPerMillion: rates.cacheRead,
            cacheWritePerMillion: rates.cacheWrite, cacheWrite1hPerMillion: rates.cacheWrite1h, source: source)
    }

    /// The base rates (below any long-context threshold).
    public var rates: TokenRates {
        TokenRates(
            input: inputPerMillion, output: outputPerMillion, cacheRead: cacheReadPerMillion,
            cacheWrite: cacheWritePerMillion, cacheWrite1h: cacheWrite1hPerMillion)
    }

    /// The rates that bill a call with this usage: the long-context tier's when its prompt
    /// (uncached input, cache reads and cache writes) is above the tier's threshold.
    public func rates(for usage: Usage) -> TokenRates {
        if let tier = longContext,
            usage.inputTokens &+ usage.cacheReadTokens &+ usage.cacheWriteTokens > tier.thresholdTokens
        {
            return tier.rates
        }
        return rates
    }

    /// The exact cost of a call's usage, rounded up to the next nano-USD. `batch` applies the
    /// batch share of the price.
    public func cost(of usage: Usage, batch: Bool = false) -> NanoUSD {
        let r = rates(for: usage)
        let oneHour = min(max(usage.cacheWrite1hTokens, 0), usage.cacheWriteTokens)
        let sum =
            Int128(usage.inputTokens) * Int128(r.input)
            + Int128(usage.outputTokens) * Int128(r.output)
            + Int128(usage.cacheReadTokens) * Int128(r.cacheRead)
            + Int128(usage.cacheWriteTokens - oneHour) * Int128(r.cacheWrite)
            + Int128(oneHour) * Int128(r.cacheWrite1h)
        let percent = Int128(batch ? batchPercent : 100)
        let divisor = Int128(1_000_000) * 100
        let nanos = (sum * percent + divisor - 1) / divisor
        return nanos > Int128(Int64.max) ? Int64.max : Int64(nanos)
    }
}

/// Per-million-token rates for each kind of token, in nano-USD.
public struct TokenRates: Sendable, Hashable, Codable {
    public var input: Int64
    public var output: Int64
    public var cacheRead: Int64
    public var cacheWrite: Int64
    public var cacheWrite1h: Int64

    public init(input: Int64, output: Int64, cacheRead: Int64, cacheWrite: Int64, cacheWrite1h: Int64) {
        self.input = input
        self.output = output
        self.cacheRead = cacheRead
        self.cacheWrite = cacheWrite
        self.cacheWrite1h = cacheWrite1h
    }

    /// Rates from dollars per million tokens; missing cache rates default to the input rate
    /// (and a missing 1-hour write rate to the 5-minute one). Nil for a negative or
    /// non-finite price.
    public init?(
        dollarsPerMillion input: Double, _ output: Double, _ cacheRead: Double?, _ cacheWrite: Double?,
        _ cacheWrite1h: Double?
    ) {
        func nanos(_ dollars: Double?) -> Int64?? {
            guard let dollars else { return .some(nil) }
            guard let value = Money.nanos(fromDollars: dollars) else { return nil }
            return .some(value)
        }
        guard let i = Money.nanos(fromDollars: input), let o = Money.nanos(fromDollars: output),
            let cr = nanos(cacheRead), let cw = nanos(cacheWrite), let cw1h = nanos(cacheWrite1h)
        else { return nil }
        self.init(input: i, output: o, cacheRead: cr ?? i, cacheWrite: cw ?? i, cacheWrite1h: cw1h ?? cw ?? i)
    }
}

/// A long-context tier: a call whose prompt is above `thresholdTokens` pays `rates` for every
/// token, input and output.
public struct LongContextPrice: Sendable, Hashable, Codable {
    public var thresholdTokens: Int64
    public var rates: TokenRates

    public init(thresholdTokens: Int64, rates: TokenRates) {
        self.thresholdTokens = thresholdTokens
        self.rates = rates
    }
}
