import Testing

@testable import SpendwallConfig
@testable import SpendwallCore

@Suite struct CapsFileEditorTests {
    let original = """
        # My caps. Keep this comment.
        [[cap]]
        name = "daily"   # the main one
        scope = { global = true }
        window = "1d"
        limit_usd = 10.0

        # Reviewer budget, see ticket 12.
        [[cap]]
        name = "reviewer"
        scope = { agent = "code-reviewer" }
        window = "7d"
        limit_usd = 5.0
        """

    let cap = Cap(
        name: "reviewer", scope: .agent(ScopePattern("code-reviewer")), window: .rolling(milliseconds: 86_400_000),
        limitNanoUSD: 2_500_000_000, action: .approve, warnAt: 0.5)

    @Test func replacingACapKeepsEveryOtherLineAndComment() throws {
        let edited = try CapsFileEditor.setting(CapsFileEditor.block(for: cap), named: "reviewer", in: original)
        #expect(edited.contains("# My caps. Keep this comment."))
        #expect(edited.contains("name = \"daily\"   # the main one"))
        #expect(edited.contains("# Reviewer budget, see ticket 12."))
        let caps = try CapsFile.parse(edited)
        #expect(caps.map(\.name) == ["daily", "reviewer"])
        #expect(caps[1] == cap)
        #expect(caps[0].limitNanoUSD == 10_000_000_000)
    }

    @Test func aNewCapIsAppendedAndARemovedOneLeavesTheRest() throws {
        var renamed = cap
        renamed.name = "tags"
        renamed.scope = .tag(key: "customer", value: ScopePattern("*"))
        renamed.limitNanoUSD = nil
        renamed.limitTokens = 100_000
        let added = try CapsFileEditor.setting(CapsFileEditor.block(for: renamed), named: "tags", in: original)
        #expect(try CapsFile.parse(added).map(\.name) == ["daily", "reviewer", "tags"])
        #expect(try CapsFile.parse(added)[2] == renamed)
        let removed = try #require(try CapsFileEditor.removing(named: "daily", in: added))
        #expect(try CapsFile.parse(removed).map(\.name) == ["reviewer", "tags"])
        #expect(removed.contains("# My caps. Keep this comment."))
        #expect(try CapsFileEditor.removing(named: "nope", in: added) == nil)
        #expect(
            try CapsFileEditor.setting(CapsFileEditor.block(for: cap), named: "reviewer", in: "").contains("[[cap]]"))
    }

    @Test func anEditThatWouldBreakTheFileIsRefused() {
        #expect(throws: ConfigError.self) {
            try CapsFileEditor.setting("[[cap]]\nname = \"x\"\nwindow = \"fortnight\"", named: "x", in: original)
        }
    }

    @Test(arguments: [(Int64(5_000_000_000), "5.0"), (50_000_000, "0.05"), (1_234_567_891, "1.234567891"), (0, "0.0")])
    func dollarsAreWrittenExactly(nanos: Int64, text: String) {
        #expect(Money.dollarsText(nanos) == text)
    }
}
