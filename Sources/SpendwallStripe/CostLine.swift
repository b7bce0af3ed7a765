/// An amount a provider billed for one period: from a Stripe invoice line or a cost export.
public struct CostLine: Sendable, Hashable {
    /// `openai` or `anthropic` (the ledger's provider names).
    public var provider: String
    public var period: BillingPeriod
    public var nanoUSD: Int64
    /// Where it came from: `stripe` or `import:openai` / `import:anthropic`.
    public var source: String
    /// The invoice id or file name: importing the same reference again replaces its figures.
    public var reference: String

    public init(provider: String, period: BillingPeriod, nanoUSD: Int64, source: String, reference: String) {
        self.provider = provider
        self.period = period
        self.nanoUSD = nanoUSD
        self.source = source
        self.reference = reference
    }

    /// Sums lines with the same provider, period, source and reference.
    public static func merged(_ lines: [CostLine]) -> [CostLine] {
        var order: [CostLine] = []
        var index: [String: Int] = [:]
        for line in lines {
            let key = "\(line.provider)|\(line.period)|\(line.source)|\(line.reference)"
            if let i = index[key] {
                order[i].nanoUSD =
                    order[i].nanoUSD.addingReportingOverflow(line.nanoUSD).overflow
                    ? Int64.max : order[i].nanoUSD + line.nanoUSD
            } else {
                index[key] = order.count
                order.append(line)
            }
        }
        return order
    }
}

/// The drift between what was billed and what the ledger saw, and whether it is worth an alert.
public struct Drift: Sendable, Hashable {
    public var billedNanoUSD: Int64
    public var ledgerNanoUSD: Int64

    public init(billedNanoUSD: Int64, ledgerNanoUSD: Int64) {
        self.billedNanoUSD = billedNanoUSD
        self.ledgerNanoUSD = ledgerNanoUSD
    }

    /// Billed minus seen: positive when the provider billed more than Spendwall recorded.
    public var nanoUSD: Int64 {
        let (d, overflow) = billedNanoUSD.subtractingReportingOverflow(ledgerNanoUSD)
        return overflow ? (billedNanoUSD > ledgerNanoUSD ? .max : .min) : d
    }

    /// The drift as a fraction of the billed amount (nil when nothing was billed).
    public var fraction: Double? {
        billedNanoUSD == 0 ? nil : Double(nanoUSD) / Double(billedNanoUSD)
    }

    /// True when the drift passes either threshold (an absent threshold never fires).
    public func exceeds(thresholdNanoUSD: Int64?, thresholdFraction: Double?) -> Bool {
        let magnitude = nanoUSD.magnitude
        if let t = thresholdNanoUSD, magnitude > t.magnitude { return true }
        if let f = thresholdFraction {
            guard let fraction else { return magnitude > 0 }
            if abs(fraction) > f { return true }
        }
        return false
    }
}
