import Foundation

/// Which Stripe invoice lines are LLM provider spend, and which month they bill
/// (`[[stripe.map]]` in alerts.toml).
public struct InvoiceMapping: Sendable, Hashable {
    /// Which month a matched line counts for.
    public enum PeriodRule: String, Sendable, Hashable {
        /// The month of the line's `period.start` (usage billed for that period).
        case lineStart = "line_start"
        /// The month the invoice was created.
        case invoiceCreated = "invoice_created"
        /// The month before the invoice was created (billing in arrears).
        case previousMonth = "previous_month"
    }

    public struct Rule: Sendable, Hashable {
        /// A Stripe product id (`prod_...`) the line's price belongs to.
        public var product: String?
        /// A glob (`*`, `?`; case-insensitive) on the line's description.
        public var description: String?
        public var provider: String
        public var period: PeriodRule

        public init(
            product: String? = nil, description: String? = nil, provider: String, period: PeriodRule = .lineStart
        ) {
            self.product = product
            self.description = description
            self.provider = provider
            self.period = period
        }

        func matches(product lineProduct: String?, description lineDescription: String?) -> Bool {
            if let product, product != lineProduct { return false }
            if let description {
                guard let lineDescription, Glob.matches(description.lowercased(), lineDescription.lowercased()) else {
                    return false
                }
            }
            return product != nil || description != nil
        }
    }

    public var rules: [Rule]

    public init(rules: [Rule]) { self.rules = rules }

    /// With no rules configured: descriptions naming OpenAI, or Anthropic/Claude.
    public static let `default` = InvoiceMapping(rules: [
        Rule(description: "*openai*", provider: "openai"),
        Rule(description: "*anthropic*", provider: "anthropic"),
        Rule(description: "*claude*", provider: "anthropic"),
    ])

    /// The invoice event types whose lines are reconciled.
    public static let invoiceEvents: Set<String> = ["invoice.finalized", "invoice.paid", "invoice.payment_succeeded"]

    /// The provider spend lines of a Stripe event (empty for events that are not invoices, or
    /// lines no rule maps). Amounts in a currency other than USD are skipped and named in
    /// `skipped`.
    public func lines(ofEvent object: [String: Any]) -> (lines: [CostLine], skipped: [String]) {
        guard let type = object["type"] as? String, Self.invoiceEvents.contains(type),
            let invoice = (object["data"] as? [String: Any])?["object"] as? [String: Any]
        else { return ([], []) }
        let invoiceID = invoice["id"] as? String ?? (object["id"] as? String ?? "invoice")
        let currency = (invoice["currency"] as? String ?? "usd").lowercased()
        let created = Self.int(invoice["created"]) ?? Self.int(object["created"])
        let items = ((invoice["lines"] as? [String: Any])?["data"] as? [[String: Any]]) ?? []
        var out: [CostLine] = []
        var skipped: [String] = []
        for item in items {
            let description = item["description"] as? String
            let product = Self.product(of: item)
            guard let rule = rules.first(where: { $0.matches(product: product, description: description) }) else {
                continue
            }
            guard currency == "usd" else {
                skipped.append("\(invoiceID): \(description ?? product ?? "a line") is in \(currency), not usd")
                continue
            }
            guard let cents = Self.int(item["amount"]) else { continue }
            let periodStart = Self.int((item["period"] as? [String: Any])?["start"])
            let period: BillingPeriod?
            switch rule.period {
            case .lineStart: period = (periodStart ?? created).flatMap { BillingPeriod(unixSeconds: $0) }
            case .invoiceCreated: period = created.flatMap { BillingPeriod(unixSeconds: $0) }
            case .previousMonth: period = created.flatMap { BillingPeriod(unixSeconds: $0) }?.previous
            }
            guard let period else { continue }
            let (nano, overflow) = cents.multipliedReportingOverflow(by: 10_000_000)
            guard !overflow else { continue }
            out.append(
                CostLine(provider: rule.provider, period: period, nanoUSD: nano, source: "stripe", reference: invoiceID)
            )
        }
        return (CostLine.merged(out), skipped)
    }

    static func product(of item: [String: Any]) -> String? {
        if let price = item["price"] as? [String: Any] {
            if let p = price["product"] as? String { return p }
            if let p = (price["product"] as? [String: Any])?["id"] as? String { return p }
        }
        if let pricing = item["pricing"] as? [String: Any],
            let details = pricing["price_details"] as? [String: Any], let p = details["product"] as? String
        {
            return p
        }
        return nil
    }

    static func int(_ value: Any?) -> Int64? {
        switch value {
        case let n as NSNumber:
            let d = n.doubleValue
            guard d.rounded() == d, abs(d) < 9.0e15 else { return nil }
            return n.int64Value
        case let s as String: return Int64(s)
        default: return nil
        }
    }
}

/// Shell-style globs: `*` any run, `?` one character.
enum Glob {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern)
        let t = Array(text)
        var pi = 0
        var ti = 0
        var star = -1
        var mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) {
                pi += 1
                ti += 1
            } else if pi < p.count && p[pi] == "*" {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
