import SpendwallCore

/// What a call may cost before it is sent: an input-token estimate from the request body and
/// the output limit it asks for.
public struct CallEstimate: Sendable, Hashable {
    public var inputTokens: Int64
    public var maxOutputTokens: Int64
    /// False: the input count is a byte-based estimate, not a tokenizer's count.
    public var exact: Bool
    /// True for a batch call (or an OpenAI `flex` one): billed at the model's batch share.
    public var batch: Bool

    public init(inputTokens: Int64, maxOutputTokens: Int64, exact: Bool = false, batch: Bool = false) {
        self.inputTokens = inputTokens
        self.maxOutputTokens = maxOutputTokens
        self.exact = exact
        self.batch = batch
    }

    /// Worst-case tokens: the whole input plus the full output limit.
    public var worstCaseTokens: Int64 { inputTokens + maxOutputTokens }

    /// Worst-case cost: input at the input price plus the full output limit at the output price.
    public func worstCaseCost(_ price: ModelPrice) -> NanoUSD {
        price.cost(of: Usage(inputTokens: inputTokens, outputTokens: maxOutputTokens), batch: batch)
    }

    /// Best-case cost: the input alone.
    public func minimumCost(_ price: ModelPrice) -> NanoUSD {
        price.cost(of: Usage(inputTokens: inputTokens), batch: batch)
    }
}

/// Estimates input tokens from an OpenAI or Anthropic request body without a tokenizer.
///
/// Text counts as one token per 4 ASCII bytes and one per 3 non-ASCII bytes (CJK and emoji
/// take more tokens per byte), each message adds 4 tokens of framing, each image 1,105 tokens
/// (the largest high-detail tile count), and tool schemas count as their JSON text.
public struct RequestEstimator: Sendable {
    public var defaultMaxTokens: Int64

    public init(defaultMaxTokens: Int64 = 4096) {
        self.defaultMaxTokens = defaultMaxTokens
    }

    public func estimate(_ request: JSONValue?) -> CallEstimate {
        guard let request else { return CallEstimate(inputTokens: 0, maxOutputTokens: defaultMaxTokens) }
        var counter = TokenCounter()
        for key in ["messages", "input", "prompt", "system", "instructions"] {
            if let value = request[key] { counter.countContent(value) }
        }
        if let tools = request["tools"] { counter.countJSON(tools) }
        if let functions = request["functions"] { counter.countJSON(functions) }
        let limit =
            request["max_tokens"]?.countValue ?? request["max_completion_tokens"]?.countValue
            ?? request["max_output_tokens"]?.countValue ?? defaultMaxTokens
        // OpenAI's flex processing is billed at batch prices.
        let batch = request["service_tier"]?.stringValue == "flex"
        return CallEstimate(inputTokens: counter.tokens, maxOutputTokens: limit, batch: batch)
    }
}

struct TokenCounter {
    private var asciiBytes: Int64 = 0
    private var otherBytes: Int64 = 0
    private var framing: Int64 = 0

    var tokens: Int64 { (asciiBytes + 3) / 4 + (otherBytes + 2) / 3 + framing }

    mutating func countText(_ text: String) {
        for byte in text.utf8 {
            if byte < 0x80 { asciiBytes += 1 } else { otherBytes += 1 }
        }
    }

    /// Counts message lists, content-part arrays and plain strings.
    mutating func countContent(_ value: JSONValue) {
        switch value {
        case .string(let text): countText(text)
        case .array(let items):
            for item in items { countContent(item) }
        case .object(let object):
            if let type = object["type"]?.stringValue,
                type == "image_url" || type == "image" || type == "input_image"
            {
                framing += 1105
                return
            }
            if object["role"] != nil { framing += 4 }
            for key in ["content", "text", "input", "output", "arguments", "name"] {
                if let inner = object[key] { countContent(inner) }
            }
            if let calls = object["tool_calls"] { countJSON(calls) }
        default: break
        }
    }

    /// Counts a JSON value as the text of its serialization (for tool schemas).
    mutating func countJSON(_ value: JSONValue) {
        switch value {
        case .string(let s): countText(s); asciiBytes += 2
        case .number: asciiBytes += 4
        case .bool: asciiBytes += 5
        case .null: asciiBytes += 4
        case .array(let items):
            asciiBytes += 2
            for item in items { countJSON(item); asciiBytes += 1 }
        case .object(let object):
            asciiBytes += 2
            for (key, item) in object {
                countText(key)
                asciiBytes += 4
                countJSON(item)
            }
        }
    }
}
