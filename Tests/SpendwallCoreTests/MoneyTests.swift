import Foundation
import Testing

@testable import SpendwallCore

@Suite struct MoneyTests {
    @Test(arguments: [
        (0.0, Int64(0)), (1.0, 1_000_000_000), (0.05, 50_000_000), (10.0, 10_000_000_000), (2.5, 2_500_000_000),
    ])
    func dollarsToNanos(dollars: Double, nanos: Int64) {
        #expect(Money.nanos(fromDollars: dollars) == nanos)
    }

    @Test func rejectsNegativeAndNonFinite() {
        #expect(Money.nanos(fromDollars: -1) == nil)
        #expect(Money.nanos(fromDollars: .infinity) == nil)
        #expect(Money.nanos(fromDollars: .nan) == nil)
    }

    @Test(arguments: [
        (Int64(0), "$0.00"), (1_000_000_000, "$1.00"), (12_345_670_000, "$12.35"), (5_125_000, "$0.0051"),
        (1_234_000_000_000, "$1,234.00"), (700, "$0.000001"), (-50_000_000, "-$0.05"),
    ])
    func formatting(nanos: Int64, text: String) {
        #expect(Money.format(nanos) == text)
    }
}

@Suite struct ScopeTests {
    let call = CallAttributes(
        provider: .openai, model: "gpt-4o-mini", agent: "reviewer", app: "Claude Code", session: "s1",
        tags: ["customer": "acme"])

    @Test func exactPrefixAndEach() {
        #expect(CapScope.agent(ScopePattern("reviewer")).key(for: call) == "reviewer")
        #expect(CapScope.agent(ScopePattern("other")).key(for: call) == nil)
        #expect(CapScope.agent(ScopePattern("*")).key(for: call) == "reviewer")
        #expect(CapScope.model(ScopePattern("gpt-4o*")).key(for: call) == "gpt-4o*")
        #expect(CapScope.tag(key: "customer", value: ScopePattern("acme")).key(for: call) == "acme")
        #expect(CapScope.tag(key: "team", value: ScopePattern("*")).key(for: call) == nil)
        #expect(CapScope.session(ScopePattern("*")).key(for: CallAttributes(provider: .openai, model: "m")) == nil)
        #expect(CapScope.global.key(for: call) == "*")
        #expect(CapScope.app(ScopePattern("Claude Code")).key(for: call) == "Claude Code")
    }

    @Test(arguments: ["1h", "30m", "1d", "7d", "30d", "day", "week", "month"])
    func windowsParse(text: String) {
        #expect(CapWindow(parsing: text)?.description == text)
    }

    @Test(arguments: ["", "0h", "-1d", "1y", "daily", "h"])
    func badWindows(text: String) {
        #expect(CapWindow(parsing: text) == nil)
    }
}
