import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SpendwallCore
import SpendwallPricing

/// Anthropic's own count of a request's input tokens (`POST /v1/messages/count_tokens`), for
/// `[estimate] anthropic_count_tokens = true`. The answer must come within ``deadline``; when
/// it does not (or fails), the caller keeps its local estimate.
struct AnthropicTokenCount: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    let client: HTTPClient
    let upstream: String
    let key: String
    var deadline: TimeAmount = .milliseconds(50)

    /// Printed, reflected or logged, it never shows the key.
    var description: String { "AnthropicTokenCount(upstream: \(upstream))" }
    var debugDescription: String { description }
    var customMirror: Mirror { Mirror(self, children: ["upstream": upstream]) }

    /// The fields count_tokens takes; everything else in a messages body is left out.
    static let fields = ["model", "messages", "system", "tools", "tool_choice", "thinking"]

    /// The input tokens Anthropic counts for `request` (a messages body), or nil.
    func inputTokens(_ request: JSONValue, model: String) async -> Int64? {
        guard case .object(let body) = request else { return nil }
        var trimmed = body.filter { Self.fields.contains($0.key) }
        trimmed["model"] = .string(model)
        guard let data = try? JSONEncoder().encode(JSONValue.object(trimmed)) else { return nil }
        var outbound = HTTPClientRequest(url: upstream + "/v1/messages/count_tokens")
        outbound.method = .POST
        outbound.headers.add(name: "content-type", value: "application/json")
        outbound.headers.add(name: "x-api-key", value: key)
        outbound.headers.add(name: "anthropic-version", value: "2023-06-01")
        outbound.body = .bytes(ByteBuffer(data: data))
        do {
            let response = try await client.execute(outbound, timeout: deadline)
            let bytes = try await response.body.collect(upTo: 64 * 1024)
            guard response.status == .ok else { return nil }
            return try JSONParser.parse(Array(bytes.readableBytesView))["input_tokens"]?.countValue
        } catch {
            return nil
        }
    }
}

extension CallEstimate {
    /// Takes Anthropic's count of the input when it answers in time; keeps the local estimate
    /// otherwise.
    mutating func refine(with counter: AnthropicTokenCount, request: JSONValue, model: String) async {
        guard let counted = await counter.inputTokens(request, model: model) else { return }
        inputTokens = counted
        exact = true
    }
}
