import SpendwallCore

/// Counts the input tokens of a request body the way the provider's chat format adds them up.
///
/// OpenAI chat: OpenAI's documented counting (the cookbook's `num_tokens_from_messages` and
/// `num_tokens_for_tools`): 3 tokens a message plus its values, 1 more for a `name`, 3 to prime
/// the reply; each tool 7 tokens (10 on cl100k models) plus `name:description`, 3 for its
/// properties, 3 and `name:type:description` for each property, enum values at 3 each (less 3
/// for the list), and 12 to close the tools. Images by ``ImageTokens``. Responses, completions
/// and embeddings bodies count their text with the same framing where it applies.
///
/// Anthropic: the same text counted with the OpenAI tokenizer, times ``anthropicFactor``
/// (Claude's tokenizer is not public; it yields more tokens for the same text), plus the
/// framing of its message format.
struct ChatTokenCounter {
    var text: any TextTokenCounter
    var model: String
    /// Claude's count for text o200k_base counts as N tokens is taken as N × this.
    static let anthropicFactor = 1.3

    // MARK: OpenAI

    func openAI(_ request: JSONValue) -> Int {
        if let messages = request["messages"]?.arrayValue {
            var total = 3  // every reply is primed with <|start|>assistant<|message|>
            for message in messages { total += openAIMessage(message) }
            if let tools = request["tools"]?.arrayValue, !tools.isEmpty {
                total += openAITools(tools.map { $0["function"] ?? $0 })
            } else if let functions = request["functions"]?.arrayValue, !functions.isEmpty {
                total += openAITools(functions)
            }
            return total
        }
        // Responses API: instructions plus input (a string or a list of items).
        if request["input"] != nil || request["instructions"] != nil {
            var total = 0
            if let instructions = request["instructions"]?.stringValue { total += 3 + text.countTokens(instructions) }
            switch request["input"] {
            case .string(let s)?:
                if request["model"] == nil && request["instructions"] == nil {
                    return text.countTokens(s)  // an embeddings body
                }
                total += 3 + text.countTokens(s)
            case .array(let items)?:
                if items.allSatisfy({ $0.stringValue != nil }), request["instructions"] == nil,
                    model.hasPrefix("text-embedding")
                {
                    return items.reduce(0) { $0 + text.countTokens($1.stringValue!) }
                }
                for item in items { total += openAIMessage(item) }
            default: break
            }
            if let tools = request["tools"]?.arrayValue, !tools.isEmpty {
                total += openAITools(tools.map { $0["function"] ?? $0 })
            }
            return total + 3
        }
        if let prompt = request["prompt"] {  // legacy completions
            return countStrings(prompt)
        }
        return 0
    }

    private func openAIMessage(_ message: JSONValue) -> Int {
        guard case .object(let fields) = message else { return countStrings(message) }
        var total = 3
        for (key, value) in fields {
            switch value {
            case .string(let s):
                total += text.countTokens(s)
                if key == "name" { total += 1 }
            case .array(let parts) where key == "content":
                for part in parts { total += openAIPart(part) }
            case .array(let calls) where key == "tool_calls":
                for call in calls {
                    // Each call is written as its function name and its JSON arguments.
                    total +=
                        3 + countStrings(call["function"]?["name"] ?? .null)
                        + countStrings(call["function"]?["arguments"] ?? .null)
                }
            case .object, .array: total += countStrings(value)
            default: break
            }
        }
        return total
    }

    private func openAIPart(_ part: JSONValue) -> Int {
        switch part["type"]?.stringValue {
        case "image_url", "input_image": return ImageTokens.openAI(part, model: model)
        case "text", "input_text", "output_text": return text.countTokens(part["text"]?.stringValue ?? "")
        default: return countStrings(part)
        }
    }

    /// The cookbook's `num_tokens_for_tools`, for function definitions
    /// (`{name, description, parameters: {properties}}`).
    private func openAITools(_ functions: [JSONValue]) -> Int {
        let cl100k = ModelEncoding.name(for: model) == "cl100k_base"
        let (funcInit, propInit, propKey, enumInit, enumItem, funcEnd) = (cl100k ? 10 : 7, 3, 3, -3, 3, 12)
        var total = 0
        for function in functions {
            total += funcInit
            let name = function["name"]?.stringValue ?? ""
            total += text.countTokens(name + ":" + trimmingPeriod(function["description"]?.stringValue ?? ""))
            guard case .object(let properties)? = function["parameters"]?["properties"], !properties.isEmpty else {
                continue
            }
            total += propInit
            for (key, property) in properties {
                total += propKey
                if let values = property["enum"]?.arrayValue {
                    total += enumInit
                    for value in values { total += enumItem + countStrings(value) }
                }
                let type = property["type"]?.stringValue ?? ""
                let description = trimmingPeriod(property["description"]?.stringValue ?? "")
                total += text.countTokens("\(key):\(type):\(description)")
                // Nested schemas are beyond the documented rule: their text is counted as is.
                for nested in ["properties", "items"] {
                    if let inner = property[nested] { total += countStrings(inner) }
                }
            }
        }
        return total + funcEnd
    }

    private func trimmingPeriod(_ s: String) -> String { s.hasSuffix(".") ? String(s.dropLast()) : s }

    // MARK: Anthropic

    func anthropic(_ request: JSONValue) -> Int {
        var textTokens = 0
        var fixed = 0
        switch request["system"] {
        case .string(let s)?: textTokens += text.countTokens(s)
        case .array(let blocks)?: for block in blocks { textTokens += countStrings(block["text"] ?? .null) }
        default: break
        }
        for message in request["messages"]?.arrayValue ?? [] {
            fixed += 4
            switch message["content"] {
            case .string(let s)?: textTokens += text.countTokens(s)
            case .array(let blocks)?:
                for block in blocks {
                    switch block["type"]?.stringValue {
                    case "image": fixed += ImageTokens.anthropic(block)
                    case "text": textTokens += text.countTokens(block["text"]?.stringValue ?? "")
                    default: textTokens += countJSONText(block)
                    }
                }
            default: break
            }
        }
        for tool in request["tools"]?.arrayValue ?? [] { textTokens += countJSONText(tool) }
        return Int((Double(textTokens) * Self.anthropicFactor).rounded(.up)) + fixed + 3
    }

    // MARK: Text inside JSON

    /// The tokens of every string (and key, for objects) inside a value.
    private func countStrings(_ value: JSONValue) -> Int {
        switch value {
        case .string(let s): return text.countTokens(s)
        case .array(let items): return items.reduce(0) { $0 + countStrings($1) }
        case .object(let object): return object.reduce(0) { $0 + text.countTokens($1.key) + countStrings($1.value) }
        case .number, .bool: return 1
        case .null: return 0
        }
    }

    /// A value counted as its JSON text: its strings plus a token for each piece of punctuation.
    private func countJSONText(_ value: JSONValue) -> Int {
        switch value {
        case .array(let items): return 2 + items.reduce(0) { $0 + 1 + countJSONText($1) }
        case .object(let object):
            return 2 + object.reduce(0) { $0 + 2 + text.countTokens($1.key) + countJSONText($1.value) }
        default: return countStrings(value) + 1
        }
    }
}
