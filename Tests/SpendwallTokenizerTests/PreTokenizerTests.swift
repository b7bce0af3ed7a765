import Testing

@testable import SpendwallTokenizer

/// The pre-tokenizers against pieces tiktoken's regexes give (checked with Python's `regex`,
/// which follows the same leftmost-first rules as tiktoken's fancy-regex).
@Suite struct PreTokenizerTests {
    @Test(arguments: [
        ("Hello world", ["Hello", " world"]),
        ("I'm here, they'LL see", ["I'm", " here", ",", " they'LL", " see"]),
        ("HELLO'S", ["HELLO'S"]),
        ("'s's", ["'s's"]),
        ("CamelCaseWord", ["Camel", "Case", "Word"]),
        ("1234567", ["123", "456", "7"]),
        ("a  b", ["a", " ", " b"]),
        ("x\n\ny", ["x", "\n\n", "y"]),
        ("  \n  x", ["  \n", " ", " x"]),
        ("foo///bar", ["foo", "///", "bar"]),
        (" !!\n\nok", [" !!\n\n", "ok"]),
        ("trailing   ", ["trailing", "   "]),
        ("\t\tif x:\r\n", ["\t", "\tif", " x", ":\r\n"]),
        ("日本語のテキスト", ["日本語のテキスト"]),
        ("émigré ÉCOLE", ["émigré", " ÉCOLE"]),
        ("e\u{0301}te\u{0301}", ["e\u{0301}te\u{0301}"]),
        ("\u{0301}abc", ["\u{0301}abc"]),
        ("x'ſ y", ["x'ſ", " y"]),
        ("🙂🙂 ok", ["🙂🙂", " ok"]),
        ("<|endoftext|>", ["<|", "endoftext", "|>"]),
    ])
    func o200k(text: String, pieces: [String]) {
        #expect(PreTokenizer.pieces(text, .o200k) == pieces)
    }

    @Test(arguments: [
        ("Hello world", ["Hello", " world"]),
        ("I'm here, they'LL see", ["I", "'m", " here", ",", " they", "'LL", " see"]),
        ("CamelCaseWord", ["CamelCaseWord"]),
        ("1234567", ["123", "456", "7"]),
        ("a  b", ["a", " ", " b"]),
        ("x\n\ny", ["x", "\n\n", "y"]),
        ("  \n  x", ["  \n", " ", " x"]),
        ("foo///bar", ["foo", "///", "bar"]),
        (" !!\n\nok", [" !!\n\n", "ok"]),
        ("trailing   ", ["trailing", "   "]),
        ("\t\tif x:\r\n", ["\t", "\tif", " x", ":\r\n"]),
        ("日本語のテキスト", ["日本語のテキスト"]),
        ("e\u{0301}te\u{0301}", ["e", "\u{0301}te", "\u{0301}"]),
        ("'s's", ["'s", "'s"]),
        ("x'ſ y", ["x", "'ſ", " y"]),
        ("HELLO'S", ["HELLO", "'S"]),
        ("$x", ["$x"]),
        ("<|endoftext|>", ["<|", "endoftext", "|>"]),
    ])
    func cl100k(text: String, pieces: [String]) {
        #expect(PreTokenizer.pieces(text, .cl100k) == pieces)
    }

    @Test(arguments: [PreTokenizer.Pattern.o200k, .cl100k])
    func piecesCoverTheText(pattern: PreTokenizer.Pattern) {
        let text = "Mixed: ÀÉÎ 12 345 ,,, \t\n\r\n x  🙂\u{2028}ſ'S\u{0300}\u{0300}  "
        #expect(PreTokenizer.pieces(text, pattern).joined() == text)
        #expect(PreTokenizer.pieces("", pattern).isEmpty)
    }
}
