/// Token usage of one call, by kind. All counts are non-negative.
///
/// `inputTokens` counts uncached input only; `outputTokens` includes reasoning tokens, and
/// `reasoningTokens` is the informational subset of them; `cacheWrite1hTokens` is the subset of
/// `cacheWriteTokens` written with Anthropic's 1-hour lifetime, priced at its own rate
/// (see docs/socket-api.md).
public struct Usage: Sendable, Hashable, Codable {
    public var inputTokens: Int64
    public var outputTokens: Int64
    public var cacheReadTokens: Int64
    public var cacheWriteTokens: Int64
    public var reasoningTokens: Int64
    public var cacheWrite1hTokens: Int64

    public init(
        inputTokens: Int64 = 0,
        outputTokens: Int64 = 0,
        cacheReadTokens: Int64 = 0,
        cacheWriteTokens: Int64 = 0,
        reasoningTokens: Int64 = 0,
        cacheWrite1hTokens: Int64 = 0
    ) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheReadTokens = cacheReadTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.reasoningTokens = reasoningTokens
        self.cacheWrite1hTokens = cacheWrite1hTokens
    }

    /// Tokens billed: every kind except the reasoning subset, which output already counts.
    public var totalTokens: Int64 {
        inputTokens &+ outputTokens &+ cacheReadTokens &+ cacheWriteTokens
    }

    enum CodingKeys: String, CodingKey {
        case inputTokens = "input_tokens"
        case outputTokens = "output_tokens"
        case cacheReadTokens = "cache_read_tokens"
        case cacheWriteTokens = "cache_write_tokens"
        case reasoningTokens = "reasoning_tokens"
        case cacheWrite1hTokens = "cache_write_1h_tokens"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func count(_ key: CodingKeys) throws -> Int64 {
            let value = try container.decodeIfPresent(Int64.self, forKey: key) ?? 0
            guard value >= 0 else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: container, debugDescription: "\(key.rawValue) must not be negative")
            }
            return value
        }
        let cacheWrites = try count(.cacheWriteTokens)
        let oneHour = try count(.cacheWrite1hTokens)
        guard oneHour <= cacheWrites else {
            throw DecodingError.dataCorruptedError(
                forKey: .cacheWrite1hTokens, in: container,
                debugDescription: "cache_write_1h_tokens is the part of cache_write_tokens written for 1 hour"
                    + " and cannot exceed it")
        }
        self.init(
            inputTokens: try count(.inputTokens),
            outputTokens: try count(.outputTokens),
            cacheReadTokens: try count(.cacheReadTokens),
            cacheWriteTokens: cacheWrites,
            reasoningTokens: try count(.reasoningTokens),
            cacheWrite1hTokens: oneHour
        )
    }
}
