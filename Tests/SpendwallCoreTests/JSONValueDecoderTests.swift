import Foundation
import Testing

@testable import SpendwallCore

/// ``JSONValueDecoder`` stands in for `JSONDecoder` on the socket API: it must decode the same
/// values and throw the same kinds of `DecodingError` at the same coding paths, because the
/// API's error messages are built from them.
@Suite struct JSONValueDecoderTests {
    struct Usage: Codable, Equatable {
        var input_tokens: Int64?
        var output_tokens: Int64?
    }

    struct Body: Codable, Equatable {
        enum Mode: String, Codable { case strict, open }
        var provider: String
        var model: String
        var agent: String?
        var tags: [String: String]?
        var usage: Usage?
        var list: [Int]?
        var nested: [[String: Bool]]?
        var ratio: Double?
        var small: Int32?
        var mode: Mode?
        var request: JSONValue?
    }

    func decodeBoth<T: Decodable>(_ type: T.Type, _ text: String) -> (
        mine: Result<T, any Error>, foundation: Result<T, any Error>
    ) {
        let bytes = Array(text.utf8)
        let mine = Result { try bytes.withUnsafeBytes { try JSONValueDecoder().decode(type, from: $0) } }
        let foundation = Result { try JSONDecoder().decode(type, from: Data(bytes)) }
        return (mine, foundation)
    }

    @Test func decodesWhatJSONDecoderDecodes() throws {
        let text = #"""
            {"provider":"openai","model":"gpt-4o","agent":null,"tags":{"customer":"acme","team":"core"},
             "usage":{"input_tokens":1200,"output_tokens":0},"list":[1,2,3],"nested":[{"a":true},{}],
             "ratio":0.25,"small":-5,"mode":"strict","unknown":{"ignored":[1,2]},
             "request":{"max_tokens":500,"messages":[{"role":"user","content":"hi"}],"temperature":0.2}}
            """#
        let (mine, foundation) = decodeBoth(Body.self, text)
        let decoded = try mine.get()
        #expect(decoded == (try foundation.get()))
        #expect(decoded.request?["max_tokens"] == .number(500))
        #expect(decoded.agent == nil)
    }

    static let badBodies: [(text: String, kind: String, path: String)] = [
        (#"{"provider":"openai"}"#, "keyNotFound", ""),
        (#"{"provider":1,"model":"m"}"#, "typeMismatch", "provider"),
        (#"{"provider":"p","model":null}"#, "valueNotFound", "model"),
        (#"{"provider":"p","model":"m","usage":{"input_tokens":"12"}}"#, "typeMismatch", "usage.input_tokens"),
        (#"{"provider":"p","model":"m","usage":{"input_tokens":1.5}}"#, "dataCorrupted", "usage.input_tokens"),
        (#"{"provider":"p","model":"m","small":3000000000}"#, "dataCorrupted", "small"),
        (#"{"provider":"p","model":"m","list":[1,"two"]}"#, "typeMismatch", "list.Index 1"),
        (#"{"provider":"p","model":"m","tags":{"a":1}}"#, "typeMismatch", "tags.a"),
        (#"{"provider":"p","model":"m","mode":"loose"}"#, "dataCorrupted", "mode"),
        (#"[]"#, "typeMismatch", ""),
        (#"{"provider":"p","#, "dataCorrupted", ""),
    ]

    @Test(arguments: badBodies)
    func throwsTheSameErrorsAtTheSamePaths(_ example: (text: String, kind: String, path: String)) {
        let (mine, foundation) = decodeBoth(Body.self, example.text)
        for (name, result) in [("JSONValueDecoder", mine), ("JSONDecoder", foundation)] {
            guard case .failure(let error) = result, let decoding = error as? DecodingError else {
                Issue.record("\(example.text) should not decode: \(result)")
                continue
            }
            let (kind, context) = Self.describe(decoding)
            #expect(kind == example.kind, "\(name) \(example.text): \(decoding)")
            // JSONDecoder reports a number that does not fit its type as invalid JSON, with no
            // path; ours names the field, which makes the API's message say which one.
            if name == "JSONDecoder" && context.codingPath.isEmpty && kind == "dataCorrupted" { continue }
            let path = context.codingPath.map { $0.intValue.map { "Index \($0)" } ?? $0.stringValue }
            #expect(path.joined(separator: ".") == example.path, "\(name) \(example.text): \(decoding)")
        }
    }

    @Test func wholeNumbersAreNeverRounded() throws {
        let (mine, _) = decodeBoth(Usage.self, #"{"input_tokens":9007199254740993}"#)
        #expect(throws: DecodingError.self) { try mine.get() }
        let (exact, _) = decodeBoth(Usage.self, #"{"input_tokens":9007199254740991,"output_tokens":-0}"#)
        #expect(try exact.get() == Usage(input_tokens: 9_007_199_254_740_991, output_tokens: 0))
    }

    static func describe(_ error: DecodingError) -> (String, DecodingError.Context) {
        switch error {
        case .keyNotFound(_, let c): return ("keyNotFound", c)
        case .typeMismatch(_, let c): return ("typeMismatch", c)
        case .valueNotFound(_, let c): return ("valueNotFound", c)
        case .dataCorrupted(let c): return ("dataCorrupted", c)
        @unknown default: return ("unknown", .init(codingPath: [], debugDescription: ""))
        }
    }
}

/// ``JSONWriter`` writes the answers sent on every call; what it writes must read back as what
/// `JSONEncoder` writes for the same value.
@Suite struct JSONWriterTests {
    struct Answer: Encodable, JSONWritable {
        var decision: String
        var reserved: Int64
        var remaining: Int64?
        var priced: Bool
        var used: Double?
        var tags: [String: String]?
        var note: String?

        func write(to writer: inout JSONWriter) {
            writer.object { w in
                w.member("decision", decision)
                w.member("reserved", reserved)
                w.member("remaining", remaining)
                w.member("priced", priced)
                w.member("used", used)
                w.member("tags", tags)
                w.member("note", note)
            }
        }
    }

    static let answers: [Answer] = [
        Answer(decision: "allow", reserved: 5_002_500, remaining: nil, priced: true, used: nil, tags: nil, note: nil),
        Answer(
            decision: "block", reserved: 0, remaining: -12, priced: false, used: 0.8125, tags: ["b": "2", "a": "1"],
            note: "quote \" backslash \\ slash / newline \n tab \t bell \u{07} nul \u{00} é 😀"),
        Answer(
            decision: "allow", reserved: .max, remaining: .min, priced: true, used: 1e-7, tags: [:], note: ""),
        Answer(decision: "allow", reserved: 1, remaining: 0, priced: true, used: 3e20, tags: nil, note: nil),
        Answer(decision: "allow", reserved: 1, remaining: 0, priced: true, used: -2, tags: nil, note: nil),
    ]

    @Test(arguments: answers)
    func readsBackAsJSONEncoderOutput(_ answer: Answer) throws {
        let mine = try JSONSerialization.jsonObject(with: Data(answer.jsonBytes)) as? NSDictionary
        let theirs = try JSONSerialization.jsonObject(with: JSONEncoder().encode(answer)) as? NSDictionary
        #expect(mine != nil)
        #expect(mine == theirs)
        // And it is valid for our own strict parser.
        #expect(throws: Never.self) { try JSONParser.parse(answer.jsonBytes) }
    }

    @Test func nonFiniteNumbersAreWrittenAsNull() {
        var writer = JSONWriter()
        writer.array { w in
            w.double(.infinity)
            w.double(.nan)
            w.int(-42)
            w.null()
            w.bool(false)
        }
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "[null,null,-42,null,false]")
    }
}
