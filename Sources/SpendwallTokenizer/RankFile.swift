/// The text format of a tiktoken rank file: one `BASE64 RANK` line per token.
enum RankFile {
    /// Every token's bytes, one after another, and where each token is in them.
    struct Parsed {
        struct Entry {
            var start: Int
            var length: Int
            var rank: UInt32
        }
        var bytes: [UInt8]
        var entries: [Entry]
    }

    /// Parses a rank file the way tiktoken's `load_tiktoken_bpe` does (lines split on `\n`,
    /// `\r\n` or `\r`, empty lines skipped, two whitespace-separated fields).
    static func parse(_ data: [UInt8]) throws -> Parsed {
        var entries: [Parsed.Entry] = []
        entries.reserveCapacity(data.count / 12)
        var decoded: [UInt8] = []
        decoded.reserveCapacity(data.count)
        try data.withUnsafeBufferPointer { text in
            var lineNumber = 0
            var i = 0
            let count = text.count
            while i < count {
                var lineEnd = i
                while lineEnd < count, text[lineEnd] != 0x0A, text[lineEnd] != 0x0D { lineEnd += 1 }
                lineNumber += 1
                defer { i = lineEnd + 1 }
                if lineEnd == i { continue }
                // Fields: [i, tokenEnd) and [rankStart, rankEnd), separated by spaces or tabs.
                func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
                var tokenStart = i
                while tokenStart < lineEnd, isBlank(text[tokenStart]) { tokenStart += 1 }
                var tokenEnd = tokenStart
                while tokenEnd < lineEnd, !isBlank(text[tokenEnd]) { tokenEnd += 1 }
                var rankStart = tokenEnd
                while rankStart < lineEnd, isBlank(text[rankStart]) { rankStart += 1 }
                var rankEnd = rankStart
                while rankEnd < lineEnd, !isBlank(text[rankEnd]) { rankEnd += 1 }
                var rest = rankEnd
                while rest < lineEnd, isBlank(text[rest]) { rest += 1 }
                guard tokenEnd > tokenStart, rankEnd > rankStart, rest == lineEnd,
                    let rank = parseRank(text, rankStart, rankEnd)
                else {
                    throw TokenizerError(.malformed, "line \(lineNumber): expected `BASE64 RANK`")
                }
                let start = decoded.count
                guard Base64.decode(text, tokenStart, tokenEnd, into: &decoded) else {
                    throw TokenizerError(.malformed, "line \(lineNumber): the token is not base64")
                }
                entries.append(Parsed.Entry(start: start, length: decoded.count - start, rank: rank))
            }
        }
        return Parsed(bytes: decoded, entries: entries)
    }

    /// A decimal rank below 10 million (so a hostile file cannot make the tables huge).
    private static func parseRank(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UInt32? {
        guard end - start <= 7 else { return nil }
        var value: UInt32 = 0
        for i in start..<end {
            let b = text[i]
            guard b >= 0x30, b <= 0x39 else { return nil }
            value = value * 10 + UInt32(b - 0x30)
        }
        return value
    }
}

/// Standard base64 (with padding), as the rank files use it.
enum Base64 {
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(c)] = UInt8(i)
        }
        return table
    }()

    /// Appends the bytes `text[start..<end]` decode to; false when they are not base64.
    static func decode(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, into out: inout [UInt8]) -> Bool {
        let length = end - start
        guard length > 0, length % 4 == 0 else { return false }
        var padding = 0
        if text[end - 1] == 0x3D { padding += 1 }
        if text[end - 2] == 0x3D { padding += 1 }
        return values.withUnsafeBufferPointer { values in
            var accumulator: UInt32 = 0
            var bits = 0
            for i in start..<(end - padding) {
                let v = values[Int(text[i])]
                guard v != 0xFF else { return false }
                accumulator = accumulator << 6 | UInt32(v)
                bits += 6
                if bits >= 8 {
                    bits -= 8
                    out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                }
            }
            return true
        }
    }
}
