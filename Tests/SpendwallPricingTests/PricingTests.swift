import Foundation
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
            "my-model*": ModelPrice(inputPerMillion: 5, outputPerMillion: 5, source: "pricing.toml"),
        ])
        #expect(custom.resolve("gpt-4o-2024-08-06").price.inputPerMillion == 1_000_000_000)
        #expect(custom.resolve("my-model-v2").entry == "my-model*")
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
        // 3 to prime the reply + 3 for the message + "user" (1) + 400 ASCII bytes (100).
        #expect(estimate.inputTokens == 107)
        #expect(!estimate.exact)
        #expect(estimator.estimate(.object(["max_output_tokens": .number(77)])).maxOutputTokens == 77)
        #expect(estimator.estimate(.object(["max_completion_tokens": .number(9)])).maxOutputTokens == 9)
        #expect(estimator.estimate(nil).maxOutputTokens == 4096)
        #expect(estimator.estimate(.object([:])).inputTokens == 0)
    }

    @Test(arguments: ["gpt-5.9", "gpt-4o-audio-preview", "claude-opus-4-9", "gpt-5-2025", "o3-deep-research"])
    func aBarePrefixIsNotAModel(model: String) {
        // gpt-5.9 is not gpt-5: pricing a newer model as an older one can be off by 2-10x.
        #expect(!table.resolve(model).priced)
    }

    @Test(arguments: [
        ("gpt-4o-2024-08-06", "gpt-4o"), ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-7-sonnet@20250219", "claude-3-7-sonnet"), ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
    ])
    func snapshotsNameTheirFamily(model: String, family: String) {
        #expect(PriceTable.family(ofSnapshot: model) == family)
    }

    @Test func longContextTierBillsEveryTokenAboveItsThreshold() {
        // gpt-5.4: $2.50 / $15 per MTok; above 272k prompt tokens $5 / $22.50.
        let price = table.resolve("gpt-5.4-2026-03-05").price
        #expect(price.longContext?.thresholdTokens == 272_000)
        #expect(price.cost(of: Usage(inputTokens: 272_000, outputTokens: 1_000)) == 680_000_000 + 15_000_000)
        #expect(price.cost(of: Usage(inputTokens: 272_001, outputTokens: 1_000)) == 1_360_005_000 + 22_500_000)
        // Cache reads count toward the threshold.
        let cached = Usage(inputTokens: 2_000, outputTokens: 0, cacheReadTokens: 271_000)
        #expect(price.rates(for: cached) == price.longContext?.rates)
    }

    @Test func oneHourCacheWritesHaveTheirOwnRate() {
        // claude-sonnet-4-5: 5-minute writes $3.75, 1-hour writes $6 per MTok.
        let price = table.resolve("claude-sonnet-4-5").price
        #expect(price.cost(of: Usage(cacheWriteTokens: 1_000_000, cacheWrite1hTokens: 1_000_000)) == 6_000_000_000)
        #expect(price.cost(of: Usage(cacheWriteTokens: 1_000_000, cacheWrite1hTokens: 250_000)) == 4_312_500_000)
        // Every built-in Anthropic model has a 1-hour rate of twice its input rate or more.
        for (name, entry) in table.entries where name.hasPrefix("claude") {
            #expect(entry.cacheWrite1hPerMillion >= 2 * entry.inputPerMillion, "\(name)")
        }
    }

    @Test func batchCallsPayTheBatchShare() {
        let price = table.resolve("gpt-4o").price
        let usage = Usage(inputTokens: 1_000, outputTokens: 1_000)
        #expect(price.cost(of: usage, batch: true) == 6_250_000)
        #expect(price.cost(of: usage) == 12_500_000)
        #expect(RequestEstimator().estimate(.object(["service_tier": .string("flex")])).batch)
        #expect(!RequestEstimator().estimate(.object(["service_tier": .string("priority")])).batch)
    }

    @Test func retiredModelsStayPricedAndSayWhen() {
        let gpt4 = table.resolve("gpt-4-0613")
        #expect(gpt4.priced)
        #expect(table.resolve("gpt-4").price.retired == "2026-10-23")
        #expect(table.resolve("gpt-4o").price.retired == nil)
    }

    @Test(arguments: [
        (1024, 1024, 4), (2048, 4096, 6), (100, 100, 1), (768, 768, 4), (4000, 1000, 4), (512, 513, 2),
    ])
    func imagesCostTheirTiles(width: Int, height: Int, tiles: Int) {
        // OpenAI's examples: 1024² → 768² → 4 tiles (765 tokens); 2048×4096 → 768×1536 → 6 tiles.
        #expect(ImageTokens.tiles(width: width, height: height) == tiles)
    }

    @Test func imageSizesAreReadFromDataURLs() throws {
        // A 1×1 PNG, and its size in the header of a bigger one.
        let png1x1 =
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        #expect(ImageTokens.dimensions(ofBase64: png1x1)! == (1, 1))
        var header: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]
        header += [0, 0, 0x08, 0x00, 0, 0, 0x10, 0x00]  // 2048 × 4096
        let part = JSONValue.object([
            "type": .string("image_url"),
            "image_url": .object(["url": .string("data:image/png;base64," + Data(header).base64EncodedString())]),
        ])
        #expect(ImageTokens.openAI(part, model: "gpt-4o") == 85 + 170 * 6)
        #expect(ImageTokens.openAI(part, model: "gpt-4o-mini") == 2833 + 5667 * 6)
        // A URL's size cannot be known: the largest the rule allows.
        let remote = JSONValue.object([
            "type": .string("image_url"), "image_url": .object(["url": .string("https://example.com/cat.png")]),
        ])
        #expect(ImageTokens.openAI(remote, model: "gpt-4o") == 85 + 170 * 8)
        let low = JSONValue.object([
            "type": .string("image_url"),
            "image_url": .object(["url": .string("https://example.com/cat.png"), "detail": .string("low")]),
        ])
        #expect(ImageTokens.openAI(low, model: "gpt-4o") == 85)
    }

    @Test func toolsAreCountedByTheDocumentedRule() {
        // One token per character makes the rule's arithmetic visible.
        struct OnePerCharacter: TextTokenCounter {
            func countTokens(_ text: String) -> Int { text.count }
        }
        let tool = JSONValue.object([
            "type": .string("function"),
            "function": .object([
                "name": .string("f"), "description": .string("d."),
                "parameters": .object([
                    "type": .string("object"),
                    "properties": .object([
                        "u": .object([
                            "type": .string("string"), "description": .string("x"),
                            "enum": .array([.string("c"), .string("ff")]),
                        ])
                    ]),
                ]),
            ]),
        ])
        let request = JSONValue.object(["messages": .array([]), "tools": .array([tool])])
        let counter = ChatTokenCounter(text: OnePerCharacter(), model: "gpt-4o")
        // 3 priming; tools: 7 + "f:d" (3) + 3 + 3 + (-3 + 3 + 1 + 3 + 2) + "u:string:x" (10) + 12.
        #expect(counter.openAI(request) == 3 + 7 + 3 + 3 + 3 + 6 + 10 + 12)
        let cl100k = ChatTokenCounter(text: OnePerCharacter(), model: "gpt-4-0613")
        #expect(cl100k.openAI(request) == counter.openAI(request) + 3)
    }

    @Test func modelsUseTheirEncoding() {
        for model in ["gpt-4o", "gpt-4o-mini-2024-07-18", "gpt-4.1", "gpt-5", "o3", "gpt-5.4-pro"] {
            #expect(ModelEncoding.name(for: model) == "o200k_base", "\(model)")
        }
        for model in ["gpt-4", "gpt-4-0613", "gpt-4-turbo", "gpt-3.5-turbo", "text-embedding-3-small"] {
            #expect(ModelEncoding.name(for: model) == "cl100k_base", "\(model)")
        }
    }
}
