/// The period a cap's spend is summed over.
public enum CapWindow: Sendable, Hashable, CustomStringConvertible {
    /// The last N milliseconds, continuously (`1h`, `1d`, `7d`, `30d`, or any `<n>m|h|d`).
    case rolling(milliseconds: Int64)
    /// The current calendar day, week or month in the local time zone.
    case calendar(CalendarPeriod)

    /// Parses `1h`, `30m`, `7d` (rolling) or `day`, `week`, `month` (calendar).
    public init?(parsing text: String) {
        if let period = CalendarPeriod(rawValue: text) {
            self = .calendar(period)
        } else if let ms = Duration.milliseconds(parsing: text) {
            self = .rolling(milliseconds: ms)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .calendar(let period): return period.rawValue
        case .rolling(let ms): return Duration.format(milliseconds: ms)
        }
    }
}

/// A calendar period in the local time zone.
public enum CalendarPeriod: String, Sendable, Hashable, CaseIterable {
    case day
    case week
    case month
}

/// Parsing and formatting of the short durations used in configuration and queries.
public enum Duration {
    /// Parses `<n>s|m|h|d` (e.g. `90s`, `10m`, `1h`, `30d`) into milliseconds.
    public static func milliseconds(parsing text: String) -> Int64? {
        guard let unit = text.last, let count = Int64(text.dropLast()), count > 0 else { return nil }
        let unitMS: Int64
        switch unit {
        case "s": unitMS = 1000
        case "m": unitMS = 60_000
        case "h": unitMS = 3_600_000
        case "d": unitMS = 86_400_000
        default: return nil
        }
        guard count <= 3650 * 86_400_000 / unitMS else { return nil }
        return count * unitMS
    }

    /// Formats milliseconds in the largest whole unit: `1d`, `36h`, `90s`.
    public static func format(milliseconds ms: Int64) -> String {
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        where ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms)ms"
    }
}

extension CapWindow {
    /// How far back the ledger must be read to rebuild this window at start-up.
    public var lookbackMS: Int64 {
        switch self {
        case .rolling(let ms): return ms + ms / 240 + 10_000
        case .calendar(.day): return 2 * 86_400_000
        case .calendar(.week): return 8 * 86_400_000
        case .calendar(.month): return 32 * 86_400_000
        }
    }
}
