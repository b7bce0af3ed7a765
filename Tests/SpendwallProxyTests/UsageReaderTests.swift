import Foundation
import SpendwallCore
import Testing

@testable import SpendwallProxy

/// The usage reader runs beside every proxied byte: over a corpus of streams and bodies in the
/// providers' wire formats (checked in under Streams/, recorded from the shared fake provider
/// with `x-fake-usage: 1200,350,800,64,120`, plus CRLF, comment and multi-line variants), it
/// must read the same usage however the bytes are split.
@Suite struct UsageReaderTests {
    struct Case: Sendable, CustomStringConvertible {
        var file: String
        var endpoint: ProxyEndpoint
        var usage: Usage
        var complete: Bool
        var description: String { file }
    }

    static let openAI = Usage(inputTokens: 1200, outputTokens: 350, cacheReadTokens: 800, reasoningTokens: 120)
    static let cases: [Case] = [
        Case(file: "openai-chat-usage.sse", endpoint: .openAIChat, usage: openAI, complete: true),
        Case(file: "openai-chat-usage-multiline.sse", endpoint: .openAIChat, usage: openAI, complete: true),
        Case(file: "openai-chat-no-usage.sse", endpoint: .openAIChat, usage: Usage(), complete: false),
        Case(
            file: "openai-completions-usage.sse", endpoint: .openAICompletions,
            usage: Usage(inputTokens: 2000, outputTokens: 350), complete: true),
        Case(file: "openai-responses.sse", endpoint: .openAIResponses, usage: openAI, complete: true),
        Case(
            file: "anthropic-messages.sse", endpoint: .anthropicMessages,
            usage: Usage(inputTokens: 1200, outputTokens: 350, cacheReadTokens: 800, cacheWriteTokens: 64),
            complete: true),
        Case(
            file: "anthropic-messages-crlf-comments.sse", endpoint: .anthropicMessages,
            usage: Usage(inputTokens: 1200, outputTokens: 350, cacheReadTokens: 800, cacheWriteTokens: 64),
            complete: true),
        Case(file: "openai-chat.json", endpoint: .openAIChat, usage: openAI, complete: true),
        Case(file: "openai-responses.json", endpoint: .openAIResponses, usage: openAI, complete: true),
        Case(
            file: "anthropic-messages.json", endpoint: .anthropicMessages,
            usage: Usage(inputTokens: 1200, outputTokens: 350, cacheReadTokens: 800, cacheWriteTokens: 64),
            complete: true),
        Case(
            file: "openai-embeddings.json", endpoint: .openAIEmbeddings, usage: Usage(inputTokens: 2000),
            complete: true),
    ]

    static func bytes(_ file: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: "Streams/\(file)", withExtension: nil))
        return Array(try Data(contentsOf: url))
    }

    static func read(_ bytes: [UInt8], _ c: Case, splits: [Int]) -> UsageReading {
        var reader = UsageReader(
            endpoint: c.endpoint, contentType: c.file.hasSuffix(".sse") ? "text/event-stream" : "application/json")
        var start = 0
        for split in splits.sorted() + [bytes.count] where split >= start {
            reader.feed(bytes[start..<split])
            start = split
        }
        return reader.finish()
    }

    @Test(arguments: cases)
    func readsTheUsageWhole(_ c: Case) throws {
        let reading = Self.read(try Self.bytes(c.file), c, splits: [])
        #expect(reading.usage == c.usage)
        #expect(reading.isComplete == c.complete)
        let text = "Hello from the fake provider. It answers every request the same way."
        if c.endpoint != .openAIEmbeddings { #expect(reading.textBytes == text.utf8.count) }
    }

    /// A property test: any split of the bytes, into any number of pieces (single bytes, CR
    /// apart from its LF), reads the same.
    @Test(arguments: cases)
    func readsTheSameUsageHoweverTheBytesAreSplit(_ c: Case) throws {
        let bytes = try Self.bytes(c.file)
        let whole = Self.read(bytes, c, splits: [])
        var rng = SeededGenerator(seed: UInt64(c.file.utf8.reduce(7) { $0 &* 31 &+ UInt64($1) }))
        for round in 0..<300 {
            let pieces = round == 0 ? bytes.count : Int.random(in: 1...64, using: &rng)
            let splits =
                round == 0
                ? Array(0..<bytes.count) : (0..<pieces).map { _ in Int.random(in: 0...bytes.count, using: &rng) }
            #expect(Self.read(bytes, c, splits: splits) == whole, "split at \(splits.sorted())")
        }
    }

    /// A stream cut anywhere never reads more than the whole, and never crashes.
    @Test(arguments: cases.filter { $0.file.hasSuffix(".sse") })
    func aStreamCutAnywhereReadsAtMostTheWhole(_ c: Case) throws {
        let bytes = try Self.bytes(c.file)
        let whole = Self.read(bytes, c, splits: [])
        for cut in 0..<bytes.count {
            let part = Self.read(Array(bytes[..<cut]), c, splits: [cut / 2])
            #expect(part.usage.outputTokens <= whole.usage.outputTokens)
            #expect(part.textBytes <= whole.textBytes)
            #expect(!part.isComplete || cut > bytes.count / 2)
        }
    }

    @Test func whatIsMissingIsEstimated() throws {
        let c = Self.cases[2]  // OpenAI chat without include_usage
        let reading = Self.read(try Self.bytes(c.file), c, splits: [])
        let charged = reading.charged(estimatedInput: 42)
        #expect(charged.inputTokens == 42)
        #expect(charged.outputTokens == Int64((reading.textBytes + 3) / 4))
        // Anthropic cut after message_start: the input counts are known, the output is estimated.
        var reader = UsageReader(endpoint: .anthropicMessages, contentType: "text/event-stream")
        let stream = try Self.bytes("anthropic-messages.sse")
        let text = String(decoding: stream, as: UTF8.self)
        let cut = text.range(of: "event: content_block_stop")!.lowerBound
        reader.feed(Array(text[..<cut].utf8))
        let partial = reader.finish()
        #expect(!partial.isComplete)
        #expect(partial.reportedInput)
        let partialCharge = partial.charged(estimatedInput: 1)
        #expect(partialCharge.inputTokens == 1200)
        #expect(partialCharge.cacheWriteTokens == 64)
        #expect(partialCharge.outputTokens == Int64((partial.textBytes + 3) / 4))
    }

    @Test func garbageIsIgnored() {
        var reader = UsageReader(endpoint: .openAIChat, contentType: "text/event-stream")
        reader.feed(Array("data: {not json\n\ndata: [DONE]\n\n: only a comment\n\nevent: x\n\n\u{0}\u{ff}\n\n".utf8))
        #expect(
            reader.finish() == UsageReading(usage: Usage(), reportedInput: false, reportedOutput: false, textBytes: 0))
        var json = UsageReader(endpoint: .openAIChat, contentType: "application/json")
        json.feed(Array(#"{"usage": "lots"}"#.utf8))
        #expect(!json.finish().isComplete)
    }
}

@Suite struct SSEParserTests {
    @Test func followsTheEventStreamRules() {
        var parser = SSEParser()
        let text = ": comment\r\nevent: a\rdata:one\ndata: two\n\nid: 7\nretry: 10\ndata\n\nevent: lonely\n\ndata: last"
        let events = parser.feed(Array(text.utf8))
        #expect(events == [SSEEvent(name: "a", data: "one\ntwo"), SSEEvent(name: nil, data: "")])
        #expect(parser.finish().isEmpty, "an event without its blank line is not dispatched")
    }
}

/// SplitMix64: a repeatable generator, so a failing split can be reproduced.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct UsageChunkFilterTests {
    static func filter(_ bytes: [UInt8], splits: [Int]) -> [UInt8] {
        var filter = UsageChunkFilter()
        var out: [UInt8] = []
        var start = 0
        for split in splits.sorted() + [bytes.count] where split >= start {
            out += filter.feed(bytes[start..<split])
            start = split
        }
        return out + filter.finish()
    }

    /// With include_usage, the stream is the one without it plus `"usage": null` in each chunk
    /// and one usage-only chunk: the filter takes that chunk out and nothing else.
    @Test(arguments: ["openai-chat-usage.sse", "openai-completions-usage.sse", "openai-chat-usage-multiline.sse"])
    func dropsExactlyTheUsageChunkHoweverTheBytesAreSplit(_ file: String) throws {
        let bytes = try UsageReaderTests.bytes(file)
        let text = String(decoding: bytes, as: UTF8.self)
        let blocks = text.components(separatedBy: "\n\n")
        let expected = blocks.filter { !$0.contains("\"choices\": []") }.joined(separator: "\n\n")
        #expect(expected.count < text.count, "the corpus stream has a usage chunk")
        let whole = Self.filter(bytes, splits: [])
        #expect(String(decoding: whole, as: UTF8.self) == expected)
        var rng = SeededGenerator(seed: 42)
        for _ in 0..<200 {
            let splits = (0..<Int.random(in: 1...40, using: &rng)).map { _ in
                Int.random(in: 0...bytes.count, using: &rng)
            }
            #expect(Self.filter(bytes, splits: splits) == whole)
        }
        #expect(Self.filter(bytes, splits: Array(0..<bytes.count)) == whole)
    }

    @Test func otherStreamsPassUnchanged() throws {
        for file in ["anthropic-messages-crlf-comments.sse", "openai-responses.sse", "openai-chat-no-usage.sse"] {
            let bytes = try UsageReaderTests.bytes(file)
            #expect(Self.filter(bytes, splits: [7, 100, 101]) == bytes, "\(file)")
        }
        // A stream cut mid-event still hands over every byte it had.
        let cut = Array("data: {\"choices\": [{\"delta\": {}}]}\n\ndata: {\"cho".utf8)
        #expect(Self.filter(cut, splits: [3]) == cut)
    }
}
