import Foundation
import Testing

@testable import SpendwallCore

/// The socket API parses every body with ``JSONParser``: it must build the values Foundation
/// builds, and refuse what is not strict JSON (Foundation lets trailing commas through; this
/// parser does not) with a message that says what and where.
@Suite struct JSONParserTests {
    static let documents: [String] = [
        #"{}"#, #"[]"#, #"null"#, #"true"#, #"false"#, #"0"#, #"-0"#, #"12"#, #"-7"#,
        #"3.25"#, #"1e3"#, #"-2.5E-3"#, #"6.02e+23"#, #"123456789012345"#, #"12345678901234567890"#,
        #"0.1"#, #"1.7976931348623157e308"#, #""""#, #""plain""#,
        #""quote \" backslash \\ slash \/ controls \b\f\n\r\t""#,
        #""\u00e9t\u00C9 \ud83d\ude00 caf\u00e9""#, #""unicode as is: été 😀""#,
        #"  {"model" : "gpt-4o" , "max_tokens":500 ,"stream":false}  "#,
        #"{"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:x"}}]}],"temperature":0.2,"n":null}"#,
        #"[1,[2,[3,[4,[]]]],{"a":{"b":{"c":[true,false,null]}}}]"#,
        "{\"tabs\"\t:\r\n[ 1 ,\n2 ]}",
    ]

    @Test(arguments: documents)
    func buildsWhatFoundationBuilds(_ text: String) throws {
        let expected = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(try JSONParser.parse(text) == expected)
    }

    static let invalid: [(text: String, message: String)] = [
        ("", "ends where a value was expected"),
        ("   ", "ends where a value was expected"),
        ("{", "expected a quoted member name"),
        (#"{"a":1,}"#, "expected a quoted member name"),
        (#"{"a" 1}"#, "expected ':'"),
        (#"{"a":1 "b":2}"#, "expected ',' or '}'"),
        ("[1,]", "where a value was expected"),
        ("[1 2]", "expected ',' or ']'"),
        ("[1", "ends inside an array"),
        (#"{a:1}"#, "expected a quoted member name"),
        ("'single'", "where a value was expected"),
        (#""open"#, "ends inside a string"),
        ("\"tab\there\"", "control character"),
        (#""bad \x escape""#, "invalid escape"),
        (#""\u12zz""#, "four hex digits"),
        (#""\u12""#, "ends inside a \\u escape"),
        ("01", "leading zero"),
        ("-", "digits after '-'"),
        ("1.", "digits after '.'"),
        ("1e", "digits in its exponent"),
        ("+1", "where a value was expected"),
        ("NaN", "where a value was expected"),
        ("1e400", "out of range"),
        ("tru", "ends inside a literal"),
        ("nul!", "where a value was expected"),
        ("{} {}", "after the JSON value"),
        ("// comment\n{}", "where a value was expected"),
    ]

    @Test(arguments: invalid)
    func refusesWhatIsNotJSON(_ example: (text: String, message: String)) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(example.text) }
        do {
            _ = try JSONParser.parse(example.text)
        } catch {
            #expect(error.message.contains(example.message), "\(example.text): \(error)")
            #expect(error.offset >= 0 && error.offset <= example.text.utf8.count)
        }
    }

    @Test func errorsSayWhereParsingStopped() {
        do {
            _ = try JSONParser.parse(#"{"model":"gpt-4o","max_tokens":5x}"#)
            Issue.record("parsed")
        } catch {
            #expect(error.offset == 32)
            #expect(error.description.hasSuffix("(at byte 32)"))
        }
    }

    @Test func hostileNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let objects = String(repeating: #"{"a":"#, count: 600) + "1" + String(repeating: "}", count: 600)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(objects) }
        let fine =
            String(repeating: "[", count: JSONParser.maxDepth) + String(repeating: "]", count: JSONParser.maxDepth)
        #expect(throws: Never.self) { try JSONParser.parse(fine) }
    }

    @Test func invalidUTF8InStringsBecomesReplacementCharacters() throws {
        let bytes: [UInt8] = Array(#"{"text":""#.utf8) + [0xFF, 0x41] + Array(#""}"#.utf8)
        #expect(try JSONParser.parse(bytes)["text"]?.stringValue == "\u{FFFD}A")
        // Lone surrogates in escapes are replaced too, never dropped silently.
        #expect(try JSONParser.parse(#""\ud800x""#).stringValue == "\u{FFFD}x")
        #expect(try JSONParser.parse(#""\udc00""#).stringValue == "\u{FFFD}")
    }

    @Test func largeWholeNumbersKeepTheirValue() throws {
        #expect(try JSONParser.parse("12345678901234567") == .number(Double("12345678901234567")!))
        #expect(try JSONParser.parse("-123456789012345") == .number(-123_456_789_012_345))
        #expect(try JSONParser.parse("1e15") == .number(1e15))
    }
}
