import Foundation
import Testing

@testable import SpendwallCore

@Suite struct WindowAccumulatorTests {
    let hour: Int64 = 3_600_000
    var utc: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }

    @Test func rollingWindowKeepsSpendForTheWholeWindowThenDropsIt() {
        let start: Int64 = 1_800_000_000_000
        var window = WindowAccumulator(window: .rolling(milliseconds: hour), calendar: utc, nowMS: start)
        window.add(cost: 100, tokens: 10, at: start)
        window.advance(to: start + hour - 1)
        #expect(window.spentNanoUSD == 100)
        // Never dropped before a full window has passed; dropped within one bucket (1/240) after.
        window.advance(to: start + hour + hour / 240 + 1)
        #expect(window.spentNanoUSD == 0)
        #expect(window.spentTokens == 0)
    }

    @Test func rollingWindowDropsOnlyExpiredBuckets() {
        let start: Int64 = 1_800_000_000_000
        var window = WindowAccumulator(window: .rolling(milliseconds: hour), calendar: utc, nowMS: start)
        window.add(cost: 1, tokens: 0, at: start)
        window.advance(to: start + hour / 2)
        window.add(cost: 2, tokens: 0, at: start + hour / 2)
        window.advance(to: start + hour + hour / 100)
        #expect(window.spentNanoUSD == 2)
        // A jump far ahead empties it without walking more than one ring.
        window.advance(to: start + 1000 * hour)
        #expect(window.spentNanoUSD == 0)
        window.add(cost: 5, tokens: 1, at: start + 1000 * hour)
        #expect(window.spentNanoUSD == 5)
    }

    @Test func spendOlderThanTheWindowIsIgnored() {
        let now: Int64 = 1_800_000_000_000
        var window = WindowAccumulator(window: .rolling(milliseconds: hour), calendar: utc, nowMS: now)
        window.add(cost: 7, tokens: 0, at: now - 2 * hour)
        #expect(window.spentNanoUSD == 0)
    }

    @Test func calendarDayResetsAtMidnight() {
        // 2026-11-23T23:00:00Z
        let lateEvening: Int64 = 1_795_474_800_000
        var window = WindowAccumulator(window: .calendar(.day), calendar: utc, nowMS: lateEvening)
        window.add(cost: 9, tokens: 3, at: lateEvening)
        #expect(window.resetsAtMS == lateEvening + hour)
        window.advance(to: lateEvening + hour - 1)
        #expect(window.spentNanoUSD == 9)
        window.advance(to: lateEvening + hour)
        #expect(window.spentNanoUSD == 0)
        #expect(window.resetsAtMS == lateEvening + 25 * hour)
    }
}
