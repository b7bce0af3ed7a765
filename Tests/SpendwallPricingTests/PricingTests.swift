import Testing

@testable import SpendwallCore
@testable import SpendwallPricing

@Suite struct PricingTests {
    let table = try! BuiltinPrices.table()

    @Test(arguments: [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"), ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"), ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"), ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"), ("claude-opus-4-1-20250805", "claude-opus-4-1"),
    ])
    func datedSnapshotsResolveToTheirFamily(model: String, entry: String) {
        let resolution = table.resolve(model)
        #expect(resolution.entry == entry)
        #expect(resolution.priced)
    }

    @Test func eachKindOfTokenIsPricedAtItsOwnRate() {
        // claude-sonnet-4-5: $3 in, $15 out, $0.30 cache read, $3.75 cache write per MTok.
        let price = table.resolve("claude-sonnet-4-5-20250929").price
        #expect(price.cost(of: Usage(inputTokens: 1_000_000)) == 3_000_000_000)
        #expect(price.cost(of: Usage(outputTokens: 1_000_000)) == 15_000_000_000)
        #expect(price.cost(of: Usage(cacheReadTokens: 1_000_000)) == 300_000_000)
        #expect(price.cost(of: Usage(cacheWriteTokens: 1_000_000)) == 3_750_000_000)
        let mixed = Usage(inputTokens: 1000, outputTokens: 200, cacheReadTokens: 5000, cacheWriteTokens: 2000)
        // 1000*3000 + 200*15000 + 5000*300 + 2000*3750 nano per 1000 tokens...
        #expect(price.cost(of: mixed) == 3_000_000 + 3_000_000 + 1_500_000 + 7_500_000)
        // gpt-4o cached input is half price.
        let gpt = table.resolve("gpt-4o-2024-08-06").price
        #expect(gpt.cost(of: Usage(cacheReadTokens: 1000)) == 1_250_000)
        #expect(gpt.cost(of: Usage(inputTokens: 1000)) == 2_500_000)
    }

    @Test func costRoundsUpToTheNextNanoDollar() {
        let price = ModelPrice(inputPerMillion: 1, outputPerMillion: 1)
        #expect(price.cost(of: Usage(inputTokens: 1)) == 1)
        #expect(price.cost(of: Usage()) == 0)
    }

    @Test func unknownModelsUseTheFallbackAndAreFlagged() {
        let resolution = table.resolve("mystery-model-9")
        #expect(!resolution.priced)
        #expect(resolution.price.cost(of: Usage(inputTokens: 1000)) > 0)
    }

    @Test func overridesWinAndAddModels() {
        let custom = table.merging([
            "gpt-4o": ModelPrice(
                inputPerMillion: 1_000_000_000, outputPerMillion: 2_000_000_000, source: "pricing.toml"),
            "my-model": ModelPrice(inputPerMillion: 5, outputPerMillion: 5, source: "pricing.toml"),
        ])
        #expect(custom.resolve("gpt-4o-2024-08-06").price.inputPerMillion == 1_000_000_000)
        #expect(custom.resolve("my-model-v2").entry == "my-model")
        #expect(custom.resolve("gpt-4o-mini").entry == "gpt-4o-mini")
    }

    @Test func estimatorReadsLimitsAndCountsText() {
        let estimator = RequestEstimator(defaultMaxTokens: 4096)
        let request = JSONValue.object([
            "max_tokens": .number(500),
            "messages": .array([
                .object(["role": .string("user"), "content": .string(String(repeating: "abcd", count: 100))])
            ]),
        ])
        let estimate = estimator.estimate(request)
        #expect(estimate.maxOutputTokens == 500)
        #expect(estimate.inputTokens == 104)
        #expect(estimator.estimate(.object(["max_output_tokens": .number(77)])).maxOutputTokens == 77)
        #expect(estimator.estimate(.object(["max_completion_tokens": .number(9)])).maxOutputTokens == 9)
        #expect(estimator.estimate(nil).maxOutputTokens == 4096)
        #expect(estimator.estimate(.object([:])).inputTokens == 0)
    }
}
