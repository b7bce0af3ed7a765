import Foundation
import SpendwallCore

/// Edits the text of a caps.toml one `[[cap]]` block at a time, so every comment and every
/// other cap stays exactly as the user wrote it. The result is validated before it is used.
public enum CapsFileEditor {
    /// The text with the cap named `name` replaced by `block`, or `block` appended.
    public static func setting(_ block: String, named name: String, in text: String) throws(ConfigError) -> String {
        var lines = text.components(separatedBy: "\n")
        if let range = blockRange(named: name, in: lines) {
            lines.replaceSubrange(range, with: block.components(separatedBy: "\n"))
            return try validated(lines.joined(separator: "\n"))
        }
        var result = text
        if !result.isEmpty && !result.hasSuffix("\n") { result += "\n" }
        if !result.isEmpty && !result.hasSuffix("\n\n") { result += "\n" }
        return try validated(result + block + "\n")
    }

    /// The text without the cap named `name`; nil when there is no such cap.
    public static func removing(named name: String, in text: String) throws(ConfigError) -> String? {
        var lines = text.components(separatedBy: "\n")
        guard let range = blockRange(named: name, in: lines) else { return nil }
        lines.removeSubrange(range)
        return try validated(lines.joined(separator: "\n"))
    }

    /// A `[[cap]]` block for `cap`, in the file's own syntax.
    public static func block(for cap: Cap) -> String {
        var lines = ["[[cap]]", "name = \(quoted(cap.name))", "scope = \(scopeText(cap.scope))"]
        lines.append("window = \(quoted(cap.window.description))")
        if let limit = cap.limitNanoUSD { lines.append("limit_usd = \(Money.dollarsText(limit))") }
        if let tokens = cap.limitTokens { lines.append("limit_tokens = \(tokens)") }
        lines.append("action = \(quoted(cap.action.rawValue))")
        lines.append("warn_at = \(cap.warnAt)")
        if cap.reserve != .worstCase {
            lines.append("reserve = \(quoted(cap.reserve.rawValue))")
            if cap.reservePercentile != 0.99 { lines.append("reserve_percentile = \(cap.reservePercentile)") }
        }
        return lines.joined(separator: "\n")
    }

    private static func validated(_ text: String) throws(ConfigError) -> String {
        _ = try CapsFile.parse(text)
        return text
    }

    /// The lines of the named cap's block: from its `[[cap]]` header to the next table header,
    /// less the blank and comment lines just before that header (they belong to what follows).
    static func blockRange(named name: String, in lines: [String]) -> Range<Int>? {
        var start: Int?
        for (index, line) in Array(zip(lines.indices, lines)) + [(lines.count, "[end]")] {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("[") else { continue }
            if let begin = start {
                var end = index
                while end > begin + 1 {
                    let previous = lines[end - 1].trimmingCharacters(in: .whitespaces)
                    guard previous.isEmpty || previous.hasPrefix("#") else { break }
                    end -= 1
                }
                if lines[begin..<end].contains(where: { isName(name, $0) }) { return begin..<end }
                start = nil
            }
            if trimmed.hasPrefix("[[cap]]") { start = index }
        }
        return nil
    }

    private static func isName(_ name: String, _ line: String) -> Bool {
        let parts = line.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == "name" else { return false }
        let value = parts[1].split(separator: "#", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces) ?? ""
        return value == quoted(name) || value == "'\(name)'"
    }

    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    private static func scopeText(_ scope: CapScope) -> String {
        switch scope {
        case .global: return "{ global = true }"
        case .tag(let key, let pattern): return "{ tag = { \(quoted(key)) = \(quoted(pattern.description)) } }"
        default:
            let (kind, value) = scope.dictionary.first!
            return "{ \(kind) = \(quoted(value)) }"
        }
    }
}
