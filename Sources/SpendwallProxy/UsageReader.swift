import SpendwallCore

/// Reads the usage of a proxied response on the side, as its bytes pass through: from the JSON
/// body of a plain response, or from the events of a stream (OpenAI chat and completion chunks
/// with `usage`, Responses `response.completed`, Anthropic `message_start` + `message_delta`).
/// It also counts the bytes of generated text, so a stream that ends without usage (OpenAI
/// without `include_usage`, a broken or killed stream) can be estimated. Pure: no I/O.
public struct UsageReader: Sendable {
    public let endpoint: ProxyEndpoint
    public let streaming: Bool
    private var sse = SSEParser()
    private var body: [UInt8] = []
    private var bodyTooLarge = false
    private var usage = Usage()
    /// What the provider has said about usage so far.
    private var sawInput = false
    private var sawOutput = false
    private var textBytes = 0
    /// Plain bodies above this are not parsed (an embeddings answer can be large; its usage is
    /// then estimated).
    public let maxBodyBytes: Int

    public init(endpoint: ProxyEndpoint, contentType: String?, maxBodyBytes: Int = 32 << 20) {
        self.endpoint = endpoint
        self.streaming = contentType?.lowercased().hasPrefix("text/event-stream") ?? false
        self.maxBodyBytes = maxBodyBytes
    }

    /// Feeds response body bytes as they are forwarded.
    public mutating func feed(_ bytes: some Collection<UInt8>) {
        if streaming {
            for event in sse.feed(bytes) { read(event) }
        } else if !bodyTooLarge {
            if body.count + bytes.count > maxBodyBytes {
                bodyTooLarge = true
                body = []
            } else {
                body.append(contentsOf: bytes)
            }
        }
    }

    /// What was read: the usage, and whether the provider reported it whole.
    public mutating func finish() -> UsageReading {
        if !streaming, !bodyTooLarge, let json = try? JSONParser.parse(body) {
            readUsage(json["usage"])
            for choice in json["choices"]?.arrayValue ?? [] {  // chat, completions
                textBytes += choice["message"]?["content"]?.stringValue?.utf8.count ?? 0
                textBytes += choice["text"]?.stringValue?.utf8.count ?? 0
            }
            for item in json["output"]?.arrayValue ?? [] {  // responses
                for part in item["content"]?.arrayValue ?? [] {
                    textBytes += part["text"]?.stringValue?.utf8.count ?? 0
                }
            }
            if endpoint == .anthropicMessages {
                for block in json["content"]?.arrayValue ?? [] {
                    textBytes += block["text"]?.stringValue?.utf8.count ?? 0
                }
            }
        }
        return UsageReading(usage: usage, reportedInput: sawInput, reportedOutput: sawOutput, textBytes: textBytes)
    }

    // MARK: streams

    private mutating func read(_ event: SSEEvent) {
        guard event.data != "[DONE]", event.data.first == "{",
            let json = try? JSONParser.parse(event.data)
        else { return }
        switch endpoint {
        case .openAIChat, .openAICompletions:
            if case .object = json["usage"] ?? .null { readUsage(json["usage"]) }
            for choice in json["choices"]?.arrayValue ?? [] {
                let delta = choice["delta"]
                textBytes += delta?["content"]?.stringValue?.utf8.count ?? 0
                textBytes += delta?["reasoning_content"]?.stringValue?.utf8.count ?? 0
                textBytes += choice["text"]?.stringValue?.utf8.count ?? 0
                for call in delta?["tool_calls"]?.arrayValue ?? [] {
                    textBytes += call["function"]?["arguments"]?.stringValue?.utf8.count ?? 0
                }
            }
        case .openAIResponses:
            let type = json["type"]?.stringValue ?? event.name ?? ""
            switch type {
            case "response.completed", "response.incomplete", "response.failed":
                readUsage(json["response"]?["usage"])
            case _ where type.hasSuffix(".delta"):
                textBytes += json["delta"]?.stringValue?.utf8.count ?? 0
            default: break
            }
        case .anthropicMessages:
            switch json["type"]?.stringValue ?? event.name ?? "" {
            case "message_start": readUsage(json["message"]?["usage"])
            case "message_delta":
                readUsage(json["usage"])
                if json["usage"]?["output_tokens"]?.countValue != nil { sawOutput = true }
            case "content_block_delta":
                let delta = json["delta"]
                textBytes += delta?["text"]?.stringValue?.utf8.count ?? 0
                textBytes += delta?["partial_json"]?.stringValue?.utf8.count ?? 0
                textBytes += delta?["thinking"]?.stringValue?.utf8.count ?? 0
            default: break
            }
        case .openAIEmbeddings, .anthropicPassthrough, .openAIPassthrough: break
        }
    }

    // MARK: usage objects

    /// Takes the counts a usage object gives; later objects overwrite what they repeat
    /// (Anthropic's `message_delta` carries the final, cumulative output count).
    private mutating func readUsage(_ value: JSONValue?) {
        guard let value, case .object = value else { return }
        switch endpoint.provider {
        case .anthropic:
            if let input = value["input_tokens"]?.countValue {
                usage.inputTokens = input
                sawInput = true
            }
            if let read = value["cache_read_input_tokens"]?.countValue { usage.cacheReadTokens = read }
            if let write = value["cache_creation_input_tokens"]?.countValue { usage.cacheWriteTokens = write }
            // `cache_creation` splits the writes by lifetime; the 1-hour ones have their own price.
            if let oneHour = value["cache_creation"]?["ephemeral_1h_input_tokens"]?.countValue {
                usage.cacheWrite1hTokens = min(oneHour, usage.cacheWriteTokens)
            }
            if let output = value["output_tokens"]?.countValue {
                usage.outputTokens = output
                // message_start carries a provisional output count; a stream's final one comes
                // with message_delta (see `read`).
                if !streaming { sawOutput = true }
            }
        case .openai:
            // Chat and completions: prompt/completion; Responses: input/output. Cached reads are
            // part of the prompt count: uncached input is the difference.
            let prompt = value["prompt_tokens"]?.countValue ?? value["input_tokens"]?.countValue
            let details = value["prompt_tokens_details"] ?? value["input_tokens_details"]
            let cached = details?["cached_tokens"]?.countValue ?? 0
            if let prompt {
                usage.inputTokens = max(0, prompt - cached)
                usage.cacheReadTokens = min(cached, prompt)
                sawInput = true
            }
            if let output = value["completion_tokens"]?.countValue ?? value["output_tokens"]?.countValue {
                usage.outputTokens = output
                sawOutput = true
            } else if endpoint == .openAIEmbeddings, prompt != nil {
                sawOutput = true  // embeddings have no output
            }
            let outputDetails = value["completion_tokens_details"] ?? value["output_tokens_details"]
            if let reasoning = outputDetails?["reasoning_tokens"]?.countValue { usage.reasoningTokens = reasoning }
        }
    }
}

/// The usage read off one response.
public struct UsageReading: Sendable, Hashable {
    public var usage: Usage
    /// The provider reported the input (and cache) counts.
    public var reportedInput: Bool
    /// The provider reported the final output count.
    public var reportedOutput: Bool
    /// Bytes of generated text (and tool-call arguments) seen.
    public var textBytes: Int

    public init(usage: Usage, reportedInput: Bool, reportedOutput: Bool, textBytes: Int) {
        self.usage = usage
        self.reportedInput = reportedInput
        self.reportedOutput = reportedOutput
        self.textBytes = textBytes
    }

    /// True when the provider gave the whole usage; false when some of it must be estimated.
    public var isComplete: Bool { reportedInput && reportedOutput }

    /// The usage to charge: what was reported, with what was not estimated — input from the
    /// request's pre-flight estimate, output at about 4 bytes a token of the text seen.
    public func charged(estimatedInput: Int64) -> Usage {
        var charged = usage
        if !reportedInput { charged.inputTokens = estimatedInput }
        if !reportedOutput { charged.outputTokens = max(usage.outputTokens, Int64((textBytes + 3) / 4)) }
        return charged
    }
}
