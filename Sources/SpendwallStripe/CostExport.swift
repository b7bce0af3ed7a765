import Foundation

/// Reads a provider's cost export into ``CostLine``s per month, for `spendwall reconcile import`.
///
/// Supported (the field names of the providers' documented cost APIs):
/// - **OpenAI JSON**: a page of `GET /v1/organization/costs` — `data[].start_time` (Unix
///   seconds) and `data[].results[].amount.value` in dollars with `amount.currency` `usd`.
/// - **Anthropic JSON**: a page of `GET /v1/organizations/cost_report` — `data[].starting_at`
///   (RFC 3339) and `data[].results[].amount`, a decimal string in cents, with `currency` `USD`.
/// - **CSV** with a header row, one cost per row, either provider's fields flattened:
///   OpenAI `start_time` (Unix seconds or a date) + `amount_value` (dollars) [+ `currency`];
///   Anthropic `starting_at` (RFC 3339 or date) + `amount` (cents) [+ `currency`]; or a plain
///   `date` + `cost_usd` (dollars) with the provider given on the command line.
public enum CostExport {
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        init(_ message: String) { self.message = message }
    }

    /// Parses `text`. `provider` is required only for the plain `date,cost_usd` CSV; when given
    /// for the others it must agree with the format.
    public static func parse(_ text: String, reference: String, provider: String? = nil) throws(Failure) -> [CostLine] {
        let trimmed = text.drop(while: { $0.isWhitespace || $0 == "\u{FEFF}" })
        if trimmed.first == "{" || trimmed.first == "[" {
            return try parseJSON(String(trimmed), reference: reference, provider: provider)
        }
        return try parseCSV(String(trimmed), reference: reference, provider: provider)
    }

    static func parseJSON(_ text: String, reference: String, provider: String?) throws(Failure) -> [CostLine] {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        } catch {
            throw Failure("the file is not valid JSON")
        }
        let buckets: [[String: Any]]
        if let page = object as? [String: Any], let data = page["data"] as? [[String: Any]] {
            buckets = data
        } else if let array = object as? [[String: Any]] {
            buckets = array
        } else {
            throw Failure(
                "expected a cost page with a data array (OpenAI /v1/organization/costs or Anthropic cost_report)")
        }
        var lines: [CostLine] = []
        for (i, bucket) in buckets.enumerated() {
            let results = bucket["results"] as? [[String: Any]] ?? []
            if let start = InvoiceMapping.int(bucket["start_time"]) {
                try check(provider, "openai")
                guard let period = BillingPeriod(unixSeconds: start) else {
                    throw Failure("data[\(i)].start_time is out of range")
                }
                for (j, result) in results.enumerated() {
                    guard let amount = result["amount"] as? [String: Any] else { continue }
                    let currency = (amount["currency"] as? String ?? "usd").lowercased()
                    guard currency == "usd" else {
                        throw Failure("data[\(i)].results[\(j)] is in \(currency); only usd is supported")
                    }
                    let nano = try nanoUSD(dollars: amount["value"], at: "data[\(i)].results[\(j)].amount.value")
                    lines.append(
                        CostLine(
                            provider: "openai", period: period, nanoUSD: nano, source: "import:openai",
                            reference: reference))
                }
            } else if let start = bucket["starting_at"] as? String {
                try check(provider, "anthropic")
                guard let period = BillingPeriod(date: start) else {
                    throw Failure("data[\(i)].starting_at is not an RFC 3339 time")
                }
                for (j, result) in results.enumerated() {
                    let currency = (result["currency"] as? String ?? "USD").lowercased()
                    guard currency == "usd" else {
                        throw Failure("data[\(i)].results[\(j)] is in \(currency); only USD is supported")
                    }
                    let nano = try nanoUSD(cents: result["amount"], at: "data[\(i)].results[\(j)].amount")
                    lines.append(
                        CostLine(
                            provider: "anthropic", period: period, nanoUSD: nano, source: "import:anthropic",
                            reference: reference))
                }
            } else {
                throw Failure("data[\(i)] has neither start_time (OpenAI) nor starting_at (Anthropic)")
            }
        }
        return CostLine.merged(lines)
    }

    static func parseCSV(_ text: String, reference: String, provider: String?) throws(Failure) -> [CostLine] {
        let rows = CSV.rows(text)
        guard let header = rows.first?.map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) else {
            throw Failure("the file is empty")
        }
        func column(_ name: String) -> Int? { header.firstIndex(of: name) }
        enum Kind { case openAI, anthropic, plain }
        let kind: Kind
        let dateColumn: Int
        let amountColumn: Int
        if let d = column("start_time"), let a = column("amount_value") {
            kind = .openAI; dateColumn = d; amountColumn = a
        } else if let d = column("starting_at"), let a = column("amount") {
            kind = .anthropic; dateColumn = d; amountColumn = a
        } else if let d = column("date"), let a = column("cost_usd") {
            kind = .plain; dateColumn = d; amountColumn = a
        } else {
            throw Failure(
                "unrecognised CSV header (\(header.joined(separator: ","))): expected start_time+amount_value (OpenAI), starting_at+amount (Anthropic), or date+cost_usd"
            )
        }
        let resolved: String
        switch kind {
        case .openAI: try check(provider, "openai"); resolved = "openai"
        case .anthropic: try check(provider, "anthropic"); resolved = "anthropic"
        case .plain:
            guard let provider, ["openai", "anthropic"].contains(provider) else {
                throw Failure(
                    "a date,cost_usd CSV does not say whose costs it holds: pass --provider openai or --provider anthropic"
                )
            }
            resolved = provider
        }
        let currencyColumn = column("currency")
        var lines: [CostLine] = []
        for (n, row) in rows.dropFirst().enumerated() {
            let line = n + 2
            if row.allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty }) { continue }
            guard row.count > max(dateColumn, amountColumn) else { throw Failure("line \(line) has too few columns") }
            if let c = currencyColumn, c < row.count {
                let currency = row[c].trimmingCharacters(in: .whitespaces).lowercased()
                guard currency.isEmpty || currency == "usd" else {
                    throw Failure("line \(line) is in \(currency); only usd is supported")
                }
            }
            let dateText = row[dateColumn].trimmingCharacters(in: .whitespaces)
            let period: BillingPeriod? =
                dateText.allSatisfy(\.isNumber)
                ? Int64(dateText).flatMap { BillingPeriod(unixSeconds: $0) } : BillingPeriod(date: dateText)
            guard let period else { throw Failure("line \(line): \"\(dateText)\" is not a date or Unix time") }
            let amountText = row[amountColumn].trimmingCharacters(in: .whitespaces)
            let nano =
                kind == .anthropic
                ? try nanoUSD(cents: amountText, at: "line \(line)")
                : try nanoUSD(dollars: amountText, at: "line \(line)")
            lines.append(
                CostLine(
                    provider: resolved, period: period, nanoUSD: nano, source: "import:\(resolved)",
                    reference: reference))
        }
        return CostLine.merged(lines)
    }

    static func check(_ given: String?, _ format: String) throws(Failure) {
        if let given, given != format {
            throw Failure("--provider \(given) does not match the file, which is \(format)'s format")
        }
    }

    /// Dollars (a JSON number or decimal text) to nano-USD, exactly for up to 9 decimals.
    static func nanoUSD(dollars value: Any?, at place: String) throws(Failure) -> Int64 {
        try scaled(value, by: 1_000_000_000, at: place)
    }

    /// Cents (decimal text, as Anthropic sends) to nano-USD.
    static func nanoUSD(cents value: Any?, at place: String) throws(Failure) -> Int64 {
        try scaled(value, by: 10_000_000, at: place)
    }

    static func scaled(_ value: Any?, by factor: Int64, at place: String) throws(Failure) -> Int64 {
        let text: String
        switch value {
        case let s as String: text = s
        case let n as NSNumber: text = "\(n)"
        default: throw Failure("\(place) is not a number")
        }
        guard let decimal = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")), !decimal.isNaN else {
            throw Failure("\(place): \"\(text)\" is not a number")
        }
        var product = decimal * Decimal(factor)
        var rounded = Decimal()
        NSDecimalRound(&rounded, &product, 0, .plain)
        let number = NSDecimalNumber(decimal: rounded)
        guard abs(number.doubleValue) < 9.0e18 else { throw Failure("\(place) is out of range") }
        return number.int64Value
    }
}

/// RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF.
enum CSV {
    static func rows(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var quoted = false
        var iterator = Array(text).makeIterator()
        var pending: Character? = nil
        while let c = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let n = iterator.next() {
                        if n == "\"" { field.append("\"") } else { quoted = false; pending = n }
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(c)
                }
                continue
            }
            switch c {
            case "\"": quoted = true
            case ",": row.append(field); field = ""
            case "\n", "\r\n":
                row.append(field); field = ""
                rows.append(row); row = []
            case "\r": continue
            default: field.append(c)
            }
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}
