/// Money in Spendwall is an integer count of nano-USD (1 USD = 1,000,000,000 nano-USD).
///
/// Amounts are never floating point in code or storage; dollars appear only at the edges
/// (configuration input and human-readable output).
public typealias NanoUSD = Int64

public enum Money {
    /// Nano-USD in one US dollar.
    public static let nanosPerDollar: Int64 = 1_000_000_000

    /// Converts a dollar amount from configuration (e.g. `limit_usd = 10.0`) to nano-USD,
    /// rounding to the nearest nano-dollar. Returns nil for negative, non-finite or absurd values.
    public static func nanos(fromDollars dollars: Double) -> NanoUSD? {
        guard dollars.isFinite, dollars >= 0, dollars < 9_000_000_000 else { return nil }
        return NanoUSD((dollars * Double(nanosPerDollar)).rounded())
    }

    /// Formats nano-USD as dollars: `$12.34` for amounts of a cent or more, more decimals
    /// below that so small calls never show as `$0.00`.
    public static func format(_ nanos: NanoUSD) -> String {
        let negative = nanos < 0
        let magnitude = nanos.magnitude
        let decimals: Int
        switch magnitude {
        case 0: decimals = 2
        case ..<10_000: decimals = 6
        case ..<10_000_000: decimals = 4
        default: decimals = 2
        }
        let scale = UInt64(1_000_000_000) / pow10(decimals)
        let rounded = (magnitude + scale / 2) / scale
        let whole = rounded / pow10(decimals)
        let fraction = String(rounded % pow10(decimals))
        let padded = String(repeating: "0", count: decimals - fraction.count) + fraction
        return (negative ? "-$" : "$") + groupThousands(whole) + "." + padded
    }

    /// Exact dollars as a decimal literal for configuration files: `5.0`, `0.05`, `1.23456789`.
    public static func dollarsText(_ nanos: NanoUSD) -> String {
        let whole = nanos / nanosPerDollar
        var fraction = String(nanos % nanosPerDollar)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.count > 1 && fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(whole).\(fraction)"
    }

    private static func pow10(_ n: Int) -> UInt64 {
        var value: UInt64 = 1
        for _ in 0..<n { value *= 10 }
        return value
    }

    private static func groupThousands(_ value: UInt64) -> String {
        let digits = Array(String(value))
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return out
    }
}
