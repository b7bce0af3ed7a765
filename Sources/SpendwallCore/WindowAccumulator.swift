import Foundation

/// Spend (dollars and tokens) summed over a cap's window, kept in memory so no check ever
/// scans the ledger.
///
/// Rolling windows are split into ``RollingWindow/bucketsPerWindow`` buckets; a bucket leaves
/// the sum only once all of it is older than the window, so the sum may include up to one
/// bucket (1/240 of the window) more than the window: it errs on the side of the cap.
/// Calendar windows reset at the period's start in the given calendar's time zone.
public struct WindowAccumulator: Sendable {
    public private(set) var spentNanoUSD: NanoUSD = 0
    public private(set) var spentTokens: Int64 = 0
    private var kind: Kind

    private enum Kind: Sendable {
        case rolling(RollingWindow)
        case calendar(CalendarWindow)
    }

    public init(window: CapWindow, calendar: Calendar, nowMS: Int64) {
        switch window {
        case .rolling(let ms): kind = .rolling(RollingWindow(windowMS: ms, nowMS: nowMS))
        case .calendar(let period):
            kind = .calendar(CalendarWindow(period: period, calendar: calendar, nowMS: nowMS))
        }
    }

    /// Drops spend that has left the window as of `nowMS`.
    public mutating func advance(to nowMS: Int64) {
        switch kind {
        case .rolling(var window):
            let dropped = window.advance(to: nowMS)
            spentNanoUSD -= dropped.cost
            spentTokens -= dropped.tokens
            kind = .rolling(window)
        case .calendar(var window):
            if window.advance(to: nowMS) {
                spentNanoUSD = 0
                spentTokens = 0
            }
            kind = .calendar(window)
        }
    }

    /// Adds spend that happened at `timeMS`; spend already outside the window is ignored.
    public mutating func add(cost: NanoUSD, tokens: Int64, at timeMS: Int64) {
        switch kind {
        case .rolling(var window):
            guard window.add(cost: cost, tokens: tokens, at: timeMS) else { return }
            kind = .rolling(window)
        case .calendar(let window):
            guard window.contains(timeMS) else { return }
        }
        spentNanoUSD += cost
        spentTokens += tokens
    }

    /// When the current calendar period ends (nil for rolling windows).
    public var resetsAtMS: Int64? {
        if case .calendar(let window) = kind { return window.endMS }
        return nil
    }
}

/// A ring of time buckets covering a rolling window.
struct RollingWindow: Sendable {
    static let bucketsPerWindow: Int64 = 240

    let bucketMS: Int64
    private var slots: [Slot]
    /// The oldest bucket index still inside the window.
    private var oldestLive: Int64
    private var newest: Int64

    private struct Slot: Sendable {
        var index: Int64 = .min
        var cost: NanoUSD = 0
        var tokens: Int64 = 0
    }

    init(windowMS: Int64, nowMS: Int64) {
        bucketMS = max(1, windowMS / Self.bucketsPerWindow)
        // One bucket more than the window so the sum always covers at least the full window.
        let count = Int(windowMS / bucketMS) + 1
        slots = Array(repeating: Slot(), count: count)
        newest = nowMS / bucketMS
        oldestLive = newest - Int64(count - 1)
    }

    private func slotIndex(_ bucket: Int64) -> Int {
        Int(((bucket % Int64(slots.count)) + Int64(slots.count)) % Int64(slots.count))
    }

    mutating func advance(to nowMS: Int64) -> (cost: NanoUSD, tokens: Int64) {
        let current = nowMS / bucketMS
        guard current > newest else { return (0, 0) }
        newest = current
        let newOldest = current - Int64(slots.count - 1)
        var dropped: (cost: NanoUSD, tokens: Int64) = (0, 0)
        if newOldest > oldestLive {
            let end = min(newOldest, oldestLive + Int64(slots.count))
            var bucket = oldestLive
            while bucket < end {
                let i = slotIndex(bucket)
                if slots[i].index == bucket {
                    dropped.cost += slots[i].cost
                    dropped.tokens += slots[i].tokens
                    slots[i] = Slot()
                }
                bucket += 1
            }
            oldestLive = newOldest
        }
        return dropped
    }

    /// Returns false when `timeMS` is already outside the window.
    mutating func add(cost: NanoUSD, tokens: Int64, at timeMS: Int64) -> Bool {
        let bucket = min(timeMS / bucketMS, newest)
        guard bucket >= oldestLive else { return false }
        let i = slotIndex(bucket)
        if slots[i].index != bucket { slots[i] = Slot(index: bucket) }
        slots[i].cost += cost
        slots[i].tokens += tokens
        return true
    }
}

/// The current calendar period.
struct CalendarWindow: Sendable {
    let period: CalendarPeriod
    let calendar: Calendar
    private(set) var startMS: Int64
    private(set) var endMS: Int64

    init(period: CalendarPeriod, calendar: Calendar, nowMS: Int64) {
        self.period = period
        self.calendar = calendar
        (startMS, endMS) = Self.bounds(period: period, calendar: calendar, nowMS: nowMS)
    }

    func contains(_ timeMS: Int64) -> Bool { timeMS >= startMS && timeMS < endMS }

    /// Moves to the period containing `nowMS`; true when the period changed.
    mutating func advance(to nowMS: Int64) -> Bool {
        guard nowMS >= endMS || nowMS < startMS else { return false }
        (startMS, endMS) = Self.bounds(period: period, calendar: calendar, nowMS: nowMS)
        return true
    }

    static func bounds(period: CalendarPeriod, calendar: Calendar, nowMS: Int64) -> (Int64, Int64) {
        let now = Date(timeIntervalSince1970: Double(nowMS) / 1000)
        let component: Calendar.Component
        switch period {
        case .day: component = .day
        case .week: component = .weekOfYear
        case .month: component = .month
        }
        guard let interval = calendar.dateInterval(of: component, for: now) else {
            return (nowMS, nowMS + 86_400_000)
        }
        return (
            Int64((interval.start.timeIntervalSince1970 * 1000).rounded()),
            Int64((interval.end.timeIntervalSince1970 * 1000).rounded())
        )
    }
}
