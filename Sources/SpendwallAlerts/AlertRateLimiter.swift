/// Holds a flapping cap to one alert per cap, per window, per kind.
///
/// The first event for a key (kind + cap + the cap's window key) goes out; the rest within
/// `windowMS` are counted, not sent, and the next one that goes out says how many were held
/// back ("summarised"). Events without a cap (KillSwitch, ConfigError…) are keyed by kind and
/// their own subject. Pure: the caller passes the time.
public struct AlertRateLimiter: Sendable {
    public var windowMS: Int64
    private var entries: [String: Entry] = [:]

    struct Entry: Sendable {
        var sentAtMS: Int64
        var suppressed: Int
    }

    public init(windowMS: Int64) {
        self.windowMS = max(0, windowMS)
    }

    public enum Verdict: Sendable, Hashable {
        /// Send it; `suppressed` more like it were held back since the last one sent.
        case send(suppressed: Int)
        case suppress
    }

    public mutating func admit(key: String, nowMS: Int64) -> Verdict {
        if var entry = entries[key], nowMS - entry.sentAtMS < windowMS, nowMS >= entry.sentAtMS {
            entry.suppressed += 1
            entries[key] = entry
            return .suppress
        }
        let held = entries[key]?.suppressed ?? 0
        entries[key] = Entry(sentAtMS: nowMS, suppressed: 0)
        if entries.count > 10_000 { entries = entries.filter { nowMS - $0.value.sentAtMS < windowMS } }
        return .send(suppressed: held)
    }
}
