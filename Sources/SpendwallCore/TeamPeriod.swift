import Foundation

extension CapWindow {
    /// The start (Unix ms) of the team period that `nowMS` falls in: the row of the team
    /// database a team cap draws its leases from.
    ///
    /// Every machine must agree on it whatever its time zone, so calendar windows are taken in
    /// UTC (a day starts at 00:00 UTC, a week on Monday, a month on the 1st) and a rolling
    /// window of length L is taken as fixed periods of L counted from the Unix epoch.
    public func teamPeriodStart(nowMS: Int64) -> Int64 { teamPeriod(nowMS: nowMS).lowerBound }

    /// The team period `nowMS` falls in, start included and end excluded (Unix ms).
    public func teamPeriod(nowMS: Int64) -> Range<Int64> {
        switch self {
        case .rolling(let length):
            guard length > 0 else { return nowMS..<(nowMS + 1) }
            let start = nowMS - ((nowMS % length) + length) % length
            return start..<(start + length)
        case .calendar(let period):
            var calendar = Calendar(identifier: .iso8601)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            let date = Date(timeIntervalSince1970: Double(nowMS) / 1000)
            let component: Calendar.Component
            switch period {
            case .day: component = .day
            case .week: component = .weekOfYear
            case .month: component = .month
            }
            guard let interval = calendar.dateInterval(of: component, for: date) else { return nowMS..<(nowMS + 1) }
            return Int64(
                (interval.start.timeIntervalSince1970 * 1000).rounded())..<Int64(
                    (interval.end.timeIntervalSince1970 * 1000).rounded())
        }
    }
}
