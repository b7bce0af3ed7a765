/// The text format of a tiktoken rank file: one `BASE64 RANK` line per token.
enum RankFile {
    /// Parses a rank file the way tiktoken's `load_tiktoken_bpe` does (lines split on `\n`,
    /// `\r\n` or `\r`, empty lines skipped, two whitespace-separated fields).
    static func parse(_ data: [UInt8]) throws -> Parsed {
        var entries: [Parsed.Entry] = []
        entries.reserveCapacity(data.count / 12)
        var decoded: [UInt8] = []
        decoded.reserveCapacity(data.count)
        var lineNumber = 0
        var i = 0
        while i < data.count {
            var lineEnd = i
            while lineEnd < data.count, data[lineEnd] != 0x0A, data[lineEnd] != 0x0D { lineEnd += 1 }
            lineNumber += 1
            defer { i = lineEnd + 1 }
            if lineEnd == i { continue }
            let fields = data[i..<lineEnd].split(whereSeparator: { $0 == 0x20 || $0 == 0x09 })
            guard fields.count == 2, let rank = parseRank(fields[1]) else {
                throw TokenizerError(.malformed, "line \(lineNumber): expected `BASE64 RANK`")
            }
            let start = decoded.count
            guard Base64.decode(fields[0], into: &decoded) else {
                throw TokenizerError(.malformed, "line \(lineNumber): the token is not base64")
            }
            entries.append(Parsed.Entry(start: start, length: decoded.count - start, rank: rank))
        }
        return Parsed(bytes: decoded, entries: entries)
    }

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

    private static func parseRank(_ field: ArraySlice<UInt8>) -> UInt32? {
        guard !field.isEmpty, field.count <= 7 else { return nil }  // ranks stay below 10 million
        var value: UInt32 = 0
        for b in field {
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

    /// Appends the decoded bytes; false when `text` is not base64.
    static func decode(_ text: ArraySlice<UInt8>, into out: inout [UInt8]) -> Bool {
        guard text.count % 4 == 0, !text.isEmpty else { return false }
        var padding = 0
        if text.last == 0x3D { padding += 1 }
        if text.count >= 2, text[text.endIndex - 2] == 0x3D { padding += 1 }
        var accumulator: UInt32 = 0
        var bits = 0
        for (n, c) in text.enumerated() {
            if n >= text.count - padding { break }
            let v = values[Int(c)]
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
