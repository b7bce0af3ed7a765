/// Splits UTF-8 text into the pieces tiktoken's pre-tokenization regex finds, without a regex
/// engine: each pattern's alternatives are followed by hand over Unicode scalars, in the order
/// and with the backtracking a leftmost-first engine (tiktoken's fancy-regex) gives them.
///
/// cl100k_base:
/// `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
///
/// o200k_base:
/// `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`
/// `|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`
/// `|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
///
/// Every position of a text starts some alternative, so pieces cover the text without gaps.
struct PreTokenizer {
    enum Pattern: Sendable {
        case cl100k
        case o200k
    }

    let pattern: Pattern
    /// Valid UTF-8 (a Swift string's bytes).
    let text: UnsafePointer<UInt8>
    /// The end of the segment being split: `$` and `(?!\S)` see it as the end of the text.
    let end: Int
    private let table: UnsafeMutablePointer<UInt8>

    init(pattern: Pattern, text: UnsafePointer<UInt8>, end: Int) {
        self.pattern = pattern
        self.text = text
        self.end = end
        self.table = ScalarClassTable.shared.classes
    }

    /// The end of the piece that starts at `start` (`start < end`).
    @inline(__always)
    func pieceEnd(from start: Int) -> Int {
        switch pattern {
        case .cl100k: cl100kPieceEnd(from: start)
        case .o200k: o200kPieceEnd(from: start)
        }
    }

    // MARK: Scalars

    /// The class of the scalar at `i` and where the next scalar starts; `ScalarClass.end` at the end.
    @inline(__always)
    private func scalar(at i: Int) -> (UInt8, Int) {
        guard i < end else { return (ScalarClass.end, end) }
        let b0 = text[i]
        if b0 < 0x80 { return (table[Int(b0)], i + 1) }
        let value: UInt32
        let length: Int
        if b0 < 0xE0 {
            value = UInt32(b0 & 0x1F) << 6 | UInt32(text[i + 1] & 0x3F)
            length = 2
        } else if b0 < 0xF0 {
            value = UInt32(b0 & 0x0F) << 12 | UInt32(text[i + 1] & 0x3F) << 6 | UInt32(text[i + 2] & 0x3F)
            length = 3
        } else {
            value =
                UInt32(b0 & 0x07) << 18 | UInt32(text[i + 1] & 0x3F) << 12 | UInt32(text[i + 2] & 0x3F) << 6
                | UInt32(text[i + 3] & 0x3F)
            length = 4
        }
        let bits = value < UInt32(ScalarClassTable.tableSize) ? table[Int(value)] : ScalarClass.compute(value)
        return (bits, i + length)
    }

    /// `[^\r\n\p{L}\p{N}]`
    @inline(__always)
    private static func isPrefix(_ c: UInt8) -> Bool {
        c & (ScalarClass.letter | ScalarClass.number | ScalarClass.newline | ScalarClass.end) == 0
    }

    /// `[^\s\p{L}\p{N}]`
    @inline(__always)
    private static func isPunctuation(_ c: UInt8) -> Bool {
        c & (ScalarClass.letter | ScalarClass.number | ScalarClass.space | ScalarClass.end) == 0
    }

    /// Advances over scalars having any of `bits`.
    @inline(__always)
    private func run(from start: Int, while bits: UInt8) -> Int {
        var i = start
        while true {
            let (c, next) = scalar(at: i)
            if c & bits == 0 { return i }
            i = next
        }
    }

    /// Advances over ASCII bytes that are `\r`, `\n` or (when `slash`) `/`.
    @inline(__always)
    private func newlines(from start: Int, slash: Bool) -> Int {
        var i = start
        while i < end {
            let b = text[i]
            guard b == 0x0A || b == 0x0D || (slash && b == 0x2F) else { break }
            i += 1
        }
        return i
    }

    /// `'(?i:s|t|re|ve|m|ll|d)` at `i`: its end, or nil. Case-insensitive matching is Unicode's
    /// simple case folding, under which `ſ` (U+017F) is an `s` too.
    @inline(__always)
    private func contraction(at i: Int) -> Int? {
        guard i + 1 < end, text[i] == 0x27 else { return nil }
        switch Self.asciiLowercased(text[i + 1]) {
        case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"):
            return i + 2
        case UInt8(ascii: "r"), UInt8(ascii: "v"):
            return i + 2 < end && Self.asciiLowercased(text[i + 2]) == UInt8(ascii: "e") ? i + 3 : nil
        case UInt8(ascii: "l"):
            return i + 2 < end && Self.asciiLowercased(text[i + 2]) == UInt8(ascii: "l") ? i + 3 : nil
        case 0xC5:
            return i + 2 < end && text[i + 2] == 0xBF ? i + 3 : nil  // ſ
        default:
            return nil
        }
    }

    @inline(__always)
    private static func asciiLowercased(_ b: UInt8) -> UInt8 {
        b >= 0x41 && b <= 0x5A ? b | 0x20 : b
    }

    /// Advances over `[^\s\p{L}\p{N}]`.
    @inline(__always)
    private func punctuation(from start: Int) -> Int {
        var i = start
        while true {
            let (c, next) = scalar(at: i)
            if !Self.isPunctuation(c) { return i }
            i = next
        }
    }

    /// A run of whitespace from `start`: its end, the end of its last `\r`/`\n` (or -1), and the
    /// start of its last scalar.
    @inline(__always)
    private func whitespace(from start: Int) -> (end: Int, afterLastNewline: Int, lastStart: Int) {
        var i = start
        var afterLastNewline = -1
        var lastStart = start
        while true {
            let (c, next) = scalar(at: i)
            if c & ScalarClass.space == 0 { break }
            if c & ScalarClass.newline != 0 { afterLastNewline = next }
            lastStart = i
            i = next
        }
        return (i, afterLastNewline, lastStart)
    }

    // MARK: cl100k_base

    private func cl100kPieceEnd(from i: Int) -> Int {
        // '(?i:[sdmt]|ll|ve|re)
        if let e = contraction(at: i) { return e }
        let (c0, n0) = scalar(at: i)
        // [^\r\n\p{L}\p{N}]?+\p{L}++ (possessive: a prefix not followed by a letter fails)
        if Self.isPrefix(c0) {
            let (c1, n1) = scalar(at: n0)
            if c1 & ScalarClass.letter != 0 { return run(from: n1, while: ScalarClass.letter) }
        } else if c0 & ScalarClass.letter != 0 {
            return run(from: n0, while: ScalarClass.letter)
        }
        // \p{N}{1,3}+
        if c0 & ScalarClass.number != 0 { return numbers(from: n0) }
        // ' ?[^\s\p{L}\p{N}]++[\r\n]*+'
        if text[i] == 0x20 {
            let (c1, n1) = scalar(at: n0)
            if Self.isPunctuation(c1) {
                return newlines(from: punctuation(from: n1), slash: false)
            }
        }
        if Self.isPunctuation(c0) {
            return newlines(from: punctuation(from: n0), slash: false)
        }
        let ws = whitespace(from: i)
        if ws.end == end { return ws.end }  // \s++$
        if ws.afterLastNewline >= 0 { return ws.afterLastNewline }  // \s*[\r\n]
        if ws.lastStart > i { return ws.lastStart }  // \s+(?!\S)
        return n0  // \s
    }

    // MARK: o200k_base

    private func o200kPieceEnd(from i: Int) -> Int {
        let (c0, n0) = scalar(at: i)
        let hasPrefix = Self.isPrefix(c0)
        // [^\r\n\p{L}\p{N}]?[U]*[W]+C?  — first with the optional prefix taken, then without.
        if hasPrefix, let e = o200kLowerWord(from: n0) { return e }
        if c0 & (ScalarClass.upper | ScalarClass.lower) != 0, let e = o200kLowerWord(from: i) { return e }
        // [^\r\n\p{L}\p{N}]?[U]+[W]*C?
        if hasPrefix, let e = o200kUpperWord(from: n0) { return e }
        if c0 & ScalarClass.upper != 0, let e = o200kUpperWord(from: i) { return e }
        // \p{N}{1,3}
        if c0 & ScalarClass.number != 0 { return numbers(from: n0) }
        // ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
        if text[i] == 0x20 {
            let (c1, n1) = scalar(at: n0)
            if Self.isPunctuation(c1) {
                return newlines(from: punctuation(from: n1), slash: true)
            }
        }
        if Self.isPunctuation(c0) {
            return newlines(from: punctuation(from: n0), slash: true)
        }
        let ws = whitespace(from: i)
        if ws.afterLastNewline >= 0 { return ws.afterLastNewline }  // \s*[\r\n]+
        if ws.end == end { return ws.end }  // \s+(?!\S) at the end
        if ws.lastStart > i { return ws.lastStart }  // \s+(?!\S), giving back the last
        return ws.end > i ? ws.end : n0  // \s+
    }

    /// `[U]*[W]+C?` from `start`: the end, or nil when it cannot match there.
    @inline(__always)
    private func o200kLowerWord(from start: Int) -> Int? {
        var i = start
        var afterLastLower = -1
        while true {
            let (c, next) = scalar(at: i)
            if c & ScalarClass.upper == 0 {
                if c & ScalarClass.lower != 0 {
                    let e = run(from: next, while: ScalarClass.lower)
                    return contraction(at: e) ?? e
                }
                break
            }
            if c & ScalarClass.lower != 0 { afterLastLower = next }
            i = next
        }
        // [U]* gives back scalars until [W]+ can take one: the last scalar of the run that is both.
        guard afterLastLower >= 0 else { return nil }
        return contraction(at: afterLastLower) ?? afterLastLower
    }

    /// `[U]+[W]*C?` from `start`: the end, or nil when it cannot match there.
    @inline(__always)
    private func o200kUpperWord(from start: Int) -> Int? {
        let upperEnd = run(from: start, while: ScalarClass.upper)
        guard upperEnd > start else { return nil }
        let e = run(from: upperEnd, while: ScalarClass.lower)
        return contraction(at: e) ?? e
    }

    // MARK: Shared

    /// `\p{N}{1,3}` after the first number, which ends at `start`.
    @inline(__always)
    private func numbers(from start: Int) -> Int {
        var i = start
        for _ in 0..<2 {
            let (c, next) = scalar(at: i)
            if c & ScalarClass.number == 0 { break }
            i = next
        }
        return i
    }
}

extension PreTokenizer {
    /// The pieces `pattern` splits `text` into (tests and diagnostics).
    static func pieces(_ text: String, _ pattern: Pattern) -> [String] {
        var text = text
        return text.withUTF8 { utf8 in
            guard let base = utf8.baseAddress else { return [] }
            let splitter = PreTokenizer(pattern: pattern, text: base, end: utf8.count)
            var out: [String] = []
            var start = 0
            while start < utf8.count {
                let end = splitter.pieceEnd(from: start)
                out.append(
                    String(decoding: UnsafeBufferPointer(start: base + start, count: end - start), as: UTF8.self))
                start = end
            }
            return out
        }
    }
}
