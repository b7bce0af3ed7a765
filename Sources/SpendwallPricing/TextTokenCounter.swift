import SpendwallTokenizer

/// Counts the tokens of a piece of text: a BPE tokenizer when its rank file is installed, else
/// ``ByteTokenEstimate``.
public protocol TextTokenCounter: Sendable {
    func countTokens(_ text: String) -> Int
}

/// A tokenizer-free estimate: one token per 4 ASCII bytes and one per 3 other bytes (CJK and
/// emoji take more tokens per byte), rounded up. Calibrated to over-count English prose and
/// code against o200k_base and cl100k_base rather than under-count it.
public struct ByteTokenEstimate: TextTokenCounter {
    public init() {}

    public func countTokens(_ text: String) -> Int {
        var ascii = 0
        var other = 0
        for byte in text.utf8 {
            if byte < 0x80 { ascii += 1 } else { other += 1 }
        }
        return (ascii + 3) / 4 + (other + 2) / 3
    }
}

/// Which OpenAI encoding a model uses: tiktoken's mapping (``EncodingName/init(model:)``), and
/// `o200k_base` for a model tiktoken does not know (every model newer than its table).
enum ModelEncoding {
    static func name(for model: String) -> String { (EncodingName(model: model) ?? .o200kBase).rawValue }
}
