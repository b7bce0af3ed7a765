import Foundation
import Testing

@testable import SpendwallTokenizer

/// The byte-pair merge and special tokens on a small made-up vocabulary, where every expected
/// id can be worked out by hand.
@Suite struct EncodingTests {
    /// Bytes 0…255 have ranks 0…255, then the given merges in order.
    static func rankFile(merges: [String]) -> [UInt8] {
        var lines: [String] = (0..<256).map { Data([UInt8($0)]).base64EncodedString() + " \($0)" }
        for (i, merge) in merges.enumerated() { lines.append(Data(merge.utf8).base64EncodedString() + " \(256 + i)") }
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    static let small = try! Encoding(
        name: .o200kBase, rankFile: rankFile(merges: ["ab", "bc", "abc", "cd", "aa", "aaa"]))

    @Test func mergesTheLowestRankFirst() {
        // ab(256) < bc(257): [ab, c, d]; then abc(258) < cd(259): [abc, d]; "abcd" is no token.
        #expect(Self.small.encodeOrdinary("abcd") == [258, 100])
        #expect(Self.small.encodeOrdinary("bcd") == [257, 100])
        #expect(Self.small.encodeOrdinary("abc") == [258])
    }

    @Test func tiesMergeLeftmostFirst() {
        // [aa, a, a] → the pairs are aaa(261) and aa(260): [aa, aa].
        #expect(Self.small.encodeOrdinary("aaaa") == [260, 260])
        // [aa, a, a, a] → aa at 1 (leftmost lowest) → [aa, aa, a] → aaa → [aa, aaa].
        #expect(Self.small.encodeOrdinary("aaaaa") == [260, 261])
    }

    @Test func piecesAreMergedSeparately() {
        // "ab" + " ab": the space belongs to the second piece, whose bytes " ab" merge to [" ", ab].
        #expect(Self.small.encodeOrdinary("ab ab") == [256, 32, 256])
    }

    @Test func specialTokens() {
        let text = "a<|endoftext|>b<|endofprompt|>"
        #expect(Self.small.encode(text, allowedSpecial: .all) == [97, 199_999, 98, 200_018])
        #expect(Self.small.encode(text, allowedSpecial: .only(["<|endofprompt|>"])).suffix(1) == [200_018])
        let ordinary = Self.small.encodeOrdinary(text)
        #expect(!ordinary.contains(199_999))
        #expect(Self.small.decodeBytes(ordinary) == Array(text.utf8))
        #expect(Self.small.decodeBytes(Self.small.encode(text)) == Array(text.utf8))
        #expect(Self.small.encode(text, allowedSpecial: .only([])) == ordinary)
    }

    @Test func multibyteTextRoundTrips() {
        let text = "héllo 日本 🙂 \u{0301}\r\n\t  end"
        #expect(Self.small.decodeBytes(Self.small.encodeOrdinary(text)) == Array(text.utf8))
        #expect(Self.small.countTokens(text) == Self.small.encodeOrdinary(text).count)
    }

    @Test func rejectsMalformedRankFiles() {
        func error(_ text: String) -> TokenizerError? {
            do {
                _ = try Encoding(name: .cl100kBase, rankFile: Array(text.utf8))
                return nil
            } catch {
                return error as? TokenizerError
            }
        }
        #expect(error("YQ== 0\n!!!! 1\n")?.message == "line 2: the token is not base64")
        #expect(error("YQ== zero\n")?.message == "line 1: expected `BASE64 RANK`")
        #expect(error("YQ== 0\nYg== 0\n")?.message == "rank 0 is given to two tokens")
        #expect(error("YQ== 0\nYQ== 1\n")?.message == "a token appears twice (ranks 0 and 1)")
        #expect(error("YQ== 0\n")?.message == "the rank file of cl100k_base has no token for byte 0")
    }
}

/// The heap merge of long pieces against tiktoken's linear scan, on random pieces where ties
/// and chains of merges are common.
@Suite struct LongPieceMergeTests {
    @Test func heapAndLinearScanAgree() {
        let table = EncodingTests.small.table
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let length = Int.random(in: 2...700, using: &generator)
            let piece = (0..<length).map { _ in Array("abcd".utf8).randomElement(using: &generator)! }
            var linear = BytePairMerger(heapThreshold: .max)
            var heap = BytePairMerger(heapThreshold: 0)
            var expected: [Int] = []
            var got: [Int] = []
            piece.withUnsafeBufferPointer { bytes in
                linear.encode(bytes.baseAddress!, length, table: table, into: &expected)
                heap.encode(bytes.baseAddress!, length, table: table, into: &got)
            }
            #expect(got == expected, "\(String(decoding: piece, as: UTF8.self))")
        }
    }
}

@Suite struct ModelEncodingTests {
    /// Expected values are tiktoken 0.14's `encoding_name_for_model` (gpt-oss aside, see the doc).
    @Test(arguments: [
        ("gpt-4o", EncodingName.o200kBase), ("gpt-4o-mini", .o200kBase), ("gpt-4o-2024-08-06", .o200kBase),
        ("gpt-4.1-nano", .o200kBase), ("gpt-5", .o200kBase), ("gpt-5-mini", .o200kBase), ("o1", .o200kBase),
        ("o3-mini", .o200kBase), ("o4-mini-2025-04-16", .o200kBase), ("chatgpt-4o-latest", .o200kBase),
        ("ft:gpt-4o-mini:acme::abc", .o200kBase), ("gpt-4", .cl100kBase), ("gpt-4-turbo", .cl100kBase),
        ("gpt-4-0613", .cl100kBase), ("gpt-3.5-turbo-0125", .cl100kBase), ("text-embedding-3-small", .cl100kBase),
        ("ft:gpt-3.5-turbo:acme::x", .cl100kBase), ("gpt-oss-120b", .o200kBase),
    ])
    func knownModels(model: String, encoding: EncodingName) {
        #expect(EncodingName(model: model) == encoding)
    }

    @Test func retiredAndUnknownModels() {
        #expect(EncodingName(model: "text-davinci-003") == nil)
        #expect(EncodingName(model: "claude-sonnet-4") == nil)
        #expect(EncodingName(model: "") == nil)
    }
}

@Suite struct ConcurrentEncodingTests {
    /// One `Encoding` serves many tasks at once (the daemon shares one) with the same results.
    @Test func manyTasksShareOneEncoding() async {
        let encoding = EncodingTests.small
        let texts = (0..<64).map { i in String(repeating: "abcd aa<|endoftext|> 日本 ", count: i % 9 + 1) + "\(i)" }
        let expected = texts.map { encoding.encode($0) }
        let results = await withTaskGroup(of: (Int, [Int]).self) { group in
            for (i, text) in texts.enumerated() { group.addTask { (i, encoding.encode(text)) } }
            var results = [[Int]](repeating: [], count: texts.count)
            for await (i, ids) in group { results[i] = ids }
            return results
        }
        #expect(results == expected)
    }
}
