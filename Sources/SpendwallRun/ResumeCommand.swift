/// Finds the command that resumes an agent's conversation in what it printed at exit:
/// Claude Code's `claude --resume ID` (or `-r ID`) and Codex's `codex resume ID`.
public enum ResumeCommand {
    /// The last resume command in `output` (terminal escapes ignored), if any.
    public static func find(in output: [UInt8]) -> String? {
        let text = String(decoding: stripEscapes(output), as: UTF8.self)
        var found: String?
        var rest = Substring(text)
        while let range = nextMatch(in: rest) {
            found = String(rest[range])
            rest = rest[range.upperBound...]
        }
        return found
    }

    private static let prefixes = ["claude --resume ", "claude -r ", "codex resume "]

    private static func nextMatch(in text: Substring) -> Range<Substring.Index>? {
        var best: Range<Substring.Index>?
        for prefix in prefixes {
            var search = text[...]
            while let start = search.range(of: prefix) {
                var end = start.upperBound
                while end < text.endIndex, Self.isIDCharacter(text[end]) { end = text.index(after: end) }
                if end > start.upperBound {
                    if best == nil || start.lowerBound < best!.lowerBound { best = start.lowerBound..<end }
                    break
                }
                search = text[start.upperBound...]
            }
        }
        return best
    }

    private static func isIDCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == ".")
    }

    /// Drops ANSI escape sequences (CSI, OSC and two-byte escapes) and carriage returns.
    static func stripEscapes(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x1B, i + 1 < bytes.count {
                let next = bytes[i + 1]
                if next == UInt8(ascii: "[") {
                    i += 2
                    while i < bytes.count, !(0x40...0x7E).contains(bytes[i]) { i += 1 }
                    i += 1
                } else if next == UInt8(ascii: "]") {
                    i += 2
                    while i < bytes.count, bytes[i] != 0x07, !(bytes[i] == 0x1B && i + 1 < bytes.count) { i += 1 }
                    i += bytes.indices.contains(i) && bytes[i] == 0x1B ? 2 : 1
                } else {
                    i += 2
                }
                continue
            }
            if b != 0x0D { out.append(b) }
            i += 1
        }
        return out
    }
}
