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

/// Estimates a request's input tokens and reads its output limit.
///
/// With a tokenizer for the model's encoding (``tokenizers``, by encoding name), an OpenAI
/// request is counted exactly by OpenAI's documented chat-format rules (``ChatTokenCounter``)
/// and the estimate says `exact`; without one, the same rules run over ``ByteTokenEstimate``.
/// Anthropic requests are always estimates (Claude's tokenizer is not public).
public struct RequestEstimator: Sendable {
    public var defaultMaxTokens: Int64
    /// Tokenizers by encoding name (`o200k_base`, `cl100k_base`).
    public var tokenizers: [String: any TextTokenCounter]

    public init(defaultMaxTokens: Int64 = 4096, tokenizers: [String: any TextTokenCounter] = [:]) {
        self.defaultMaxTokens = defaultMaxTokens
        self.tokenizers = tokenizers
    }

    /// The estimate for a request body. `model` and `provider` default to what the body says
    /// (a `claude` model is Anthropic's).
    public func estimate(_ request: JSONValue?, model: String? = nil, provider: Provider? = nil) -> CallEstimate {
        guard let request else { return CallEstimate(inputTokens: 0, maxOutputTokens: defaultMaxTokens) }
        let model = model ?? request["model"]?.stringValue ?? ""
        let provider = provider ?? (model.hasPrefix("claude") ? .anthropic : .openai)
        let input: Int
        var exact = false
        switch provider {
        case .openai:
            let tokenizer = tokenizers[ModelEncoding.name(for: model)]
            input = ChatTokenCounter(text: tokenizer ?? ByteTokenEstimate(), model: model).openAI(request)
            exact = tokenizer != nil
        case .anthropic:
            let tokenizer = tokenizers["o200k_base"]
            input = ChatTokenCounter(text: tokenizer ?? ByteTokenEstimate(), model: model).anthropic(request)
        }
        let limit =
            request["max_tokens"]?.countValue ?? request["max_completion_tokens"]?.countValue
            ?? request["max_output_tokens"]?.countValue ?? defaultMaxTokens
        // OpenAI's flex processing is billed at batch prices.
        let batch = request["service_tier"]?.stringValue == "flex"
        return CallEstimate(inputTokens: Int64(input), maxOutputTokens: limit, exact: exact, batch: batch)
    }
}
