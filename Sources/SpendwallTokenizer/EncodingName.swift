/// The OpenAI BPE encodings Spendwall can count with, and what tiktoken pins for each: the
/// rank file's download address and SHA-256, the special tokens and the pre-tokenizer.
///
/// The values are those of tiktoken 0.14 (`tiktoken_ext/openai_public.py`).
public enum EncodingName: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// GPT-4o, GPT-4.1, GPT-5, o-series.
    case o200kBase = "o200k_base"
    /// GPT-4, GPT-3.5-turbo, text-embedding-3.
    case cl100kBase = "cl100k_base"

    public var description: String { rawValue }

    /// The rank file's name in `$SPENDWALL_DATA_DIR/tokenizers/`.
    public var fileName: String { rawValue + ".tiktoken" }

    /// Where tiktoken downloads the rank file from; tiktoken's cache names the file by the
    /// SHA-1 hex digest of this string.
    public var downloadURL: String { "https://openaipublic.blob.core.windows.net/encodings/\(rawValue).tiktoken" }

    /// The SHA-256 (hex) of the rank file, as tiktoken pins it.
    public var sha256: String {
        switch self {
        case .o200kBase: "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
        case .cl100kBase: "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
        }
    }

    /// The special tokens and their ids.
    public var specialTokens: [String: Int] {
        switch self {
        case .o200kBase: ["<|endoftext|>": 199_999, "<|endofprompt|>": 200_018]
        case .cl100kBase:
            [
                "<|endoftext|>": 100_257, "<|fim_prefix|>": 100_258, "<|fim_middle|>": 100_259,
                "<|fim_suffix|>": 100_260, "<|endofprompt|>": 100_276,
            ]
        }
    }

    var pattern: PreTokenizer.Pattern {
        switch self {
        case .o200kBase: .o200k
        case .cl100kBase: .cl100k
        }
    }
}

extension EncodingName {
    /// The encoding an OpenAI model counts with, as tiktoken 0.14's `encoding_name_for_model`
    /// maps it (exact names first, then prefixes of dated and fine-tuned names); nil for models
    /// on retired encodings (`p50k_base`, `r50k_base`) and unknown names.
    ///
    /// `gpt-oss-*` maps to `o200k_base`: its `o200k_harmony` has the same pattern and ranks and
    /// differs only in special tokens, so ordinary text counts the same.
    public init?(model: String) {
        if let exact = Self.models[model] {
            self = exact
            return
        }
        guard let match = Self.modelPrefixes.first(where: { model.hasPrefix($0.prefix) }) else { return nil }
        self = match.encoding
    }

    private static let models: [String: EncodingName] = [
        "o1": .o200kBase, "o3": .o200kBase, "o4-mini": .o200kBase, "gpt-5": .o200kBase, "gpt-4.1": .o200kBase,
        "gpt-4o": .o200kBase, "gpt-4": .cl100kBase, "gpt-3.5-turbo": .cl100kBase, "gpt-3.5": .cl100kBase,
        "gpt-35-turbo": .cl100kBase, "davinci-002": .cl100kBase, "babbage-002": .cl100kBase,
        "text-embedding-ada-002": .cl100kBase, "text-embedding-3-small": .cl100kBase,
        "text-embedding-3-large": .cl100kBase,
    ]

    /// In tiktoken's order: the first matching prefix wins.
    private static let modelPrefixes: [(prefix: String, encoding: EncodingName)] = [
        ("o1-", .o200kBase), ("o3-", .o200kBase), ("o4-mini-", .o200kBase), ("gpt-5", .o200kBase),
        ("gpt-4.5-", .o200kBase), ("gpt-4.1-", .o200kBase), ("chatgpt-4o-", .o200kBase), ("gpt-4o-", .o200kBase),
        ("gpt-4-", .cl100kBase), ("gpt-3.5-turbo-", .cl100kBase), ("gpt-35-turbo-", .cl100kBase),
        ("gpt-oss-", .o200kBase), ("ft:gpt-4o", .o200kBase), ("ft:gpt-4", .cl100kBase),
        ("ft:gpt-3.5-turbo", .cl100kBase), ("ft:davinci-002", .cl100kBase), ("ft:babbage-002", .cl100kBase),
    ]
}
