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

/// Which OpenAI encoding a model uses (tiktoken's `encoding_for_model`, for the models
/// Spendwall prices): `cl100k_base` for the GPT-4 / GPT-3.5 generation and the embeddings,
/// `o200k_base` for everything newer.
public enum ModelEncoding {
    public static func name(for model: String) -> String {
        let cl100k = ["gpt-4-", "gpt-3.5", "text-embedding-", "gpt-35-"]
        if model == "gpt-4" || cl100k.contains(where: { model.hasPrefix($0) }) {
            // gpt-4o and gpt-4.1 are o200k; "gpt-4-" is gpt-4-turbo, gpt-4-0613 and the like.
            return "cl100k_base"
        }
        return "o200k_base"
    }
}
