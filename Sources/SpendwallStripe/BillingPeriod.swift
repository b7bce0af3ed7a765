import Foundation

/// A calendar month in UTC, written `2026-11`: the unit invoices and the ledger are matched in.
public struct BillingPeriod: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var year: Int
    public var month: Int

    public init?(year: Int, month: Int) {
        guard (1970...9999).contains(year), (1...12).contains(month) else { return nil }
        self.year = year
        self.month = month
    }

    /// Parses `YYYY-MM`.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 4, parts[1].count == 2,
            let y = Int(parts[0]), let m = Int(parts[1])
        else { return nil }
        self.init(year: y, month: m)
    }

    /// The month containing a Unix time in seconds (UTC).
    public init?(unixSeconds: Int64) {
        guard unixSeconds >= 0, unixSeconds < 253_402_300_800 else { return nil }
        let (y, m, _) = Self.civil(days: unixSeconds / 86_400)
        self.init(year: y, month: m)
    }

    public var description: String {
        String(format: "%04d-%02d", year, month)
    }

    public static func < (a: BillingPeriod, b: BillingPeriod) -> Bool {
        (a.year, a.month) < (b.year, b.month)
    }

    public var previous: BillingPeriod {
        month == 1 ? BillingPeriod(year: year - 1, month: 12) ?? self : BillingPeriod(year: year, month: month - 1)!
    }

    public var next: BillingPeriod {
        month == 12 ? BillingPeriod(year: year + 1, month: 1) ?? self : BillingPeriod(year: year, month: month + 1)!
    }

    /// The first millisecond of the month (UTC).
    public var startMS: Int64 { Self.days(year: year, month: month, day: 1) * 86_400_000 }
    /// The first millisecond after the month.
    public var endMS: Int64 {
        month == 12
            ? Self.days(year: year + 1, month: 1, day: 1) * 86_400_000
            : Self.days(year: year, month: month + 1, day: 1) * 86_400_000
    }

    // Howard Hinnant's civil-calendar algorithms: days since 1970-01-01 and back.
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(days: Int64) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (Int(y), Int(m), Int(d))
    }

    /// Parses the date part of an RFC 3339 timestamp or a plain `YYYY-MM-DD` date.
    public init?(date text: String) {
        let head = text.prefix(10)
        let parts = head.split(separator: "-")
        guard parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), Int(parts[2]) != nil else { return nil }
        self.init(year: y, month: m)
    }
}
