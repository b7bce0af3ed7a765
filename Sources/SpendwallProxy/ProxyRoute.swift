import SpendwallCore

/// What a proxied request is: which provider API, and whether it is billed.
public enum ProxyEndpoint: String, Sendable, Hashable, CaseIterable {
    case openAIChat = "chat.completions"
    case openAIResponses = "responses"
    case openAICompletions = "completions"
    case openAIEmbeddings = "embeddings"
    case anthropicMessages = "messages"
    /// Passed through, never billed: `/v1/messages/count_tokens`, `/v1/models`.
    case anthropicPassthrough = "anthropic-passthrough"
    case openAIPassthrough = "openai-passthrough"

    public var provider: Provider {
        switch self {
        case .anthropicMessages, .anthropicPassthrough: return .anthropic
        default: return .openai
        }
    }

    /// Billed endpoints are checked before they go upstream and leave a ledger row.
    public var isBilled: Bool { self != .anthropicPassthrough && self != .openAIPassthrough }
}

/// A proxied request's route: the attribution its path carries, the path to send upstream, and
/// the endpoint it reaches.
///
/// Tools that can only set a base URL name their agent and session in it:
/// `http://127.0.0.1:8787/agent/reviewer/session/s1/v1` — those segments (in either order,
/// each at most once) are taken off before the request goes upstream.
public struct ProxyRoute: Sendable, Hashable {
    public var agent: String?
    public var session: String?
    /// The path (and query) sent upstream.
    public var upstreamPath: String
    public var endpoint: ProxyEndpoint

    /// Routes a request, or says why it cannot be proxied (the answer is a 404 with that text).
    public static func resolve(method: String, uri: String, headers: [(String, String)]) -> Result<
        ProxyRoute, RouteError
    > {
        let (rawPath, query) = Self.split(uri)
        var segments = rawPath.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var agent: String?
        var session: String?
        while let first = segments.first, first == "agent" || first == "session" {
            let key = String(first)
            segments = segments.dropFirst()
            guard let value = segments.first.flatMap({ Self.percentDecoded($0) }), !value.isEmpty else {
                return .failure(RouteError("/\(key)/ must be followed by a name, like /\(key)/reviewer/v1/…"))
            }
            if key == "agent" {
                guard agent == nil else { return .failure(RouteError("the path names /agent/ twice")) }
                agent = value
            } else {
                guard session == nil else { return .failure(RouteError("the path names /session/ twice")) }
                session = value
            }
            segments = segments.dropFirst()
        }
        let path = "/" + segments.joined(separator: "/")
        guard let endpoint = Self.endpoint(method: method, path: path, headers: headers) else {
            return .failure(
                RouteError(
                    "the proxy does not serve \(method) \(path): it forwards POST /v1/chat/completions, /v1/responses, /v1/completions, /v1/embeddings, /v1/messages, /v1/messages/count_tokens and GET /v1/models"
                ))
        }
        return .success(
            ProxyRoute(
                agent: agent, session: session, upstreamPath: query.map { path + "?" + $0 } ?? path, endpoint: endpoint)
        )
    }

    static func endpoint(method: String, path: String, headers: [(String, String)]) -> ProxyEndpoint? {
        switch (method, path) {
        case ("POST", "/v1/chat/completions"): return .openAIChat
        case ("POST", "/v1/responses"): return .openAIResponses
        case ("POST", "/v1/completions"): return .openAICompletions
        case ("POST", "/v1/embeddings"): return .openAIEmbeddings
        case ("POST", "/v1/messages"): return .anthropicMessages
        case ("POST", "/v1/messages/count_tokens"): return .anthropicPassthrough
        case ("GET", _) where path == "/v1/models" || path.hasPrefix("/v1/models/"):
            // Both providers serve /v1/models; Anthropic's clients say who they are.
            let anthropic = headers.contains { name, _ in
                name.lowercased() == "anthropic-version" || name.lowercased() == "x-api-key"
            }
            return anthropic ? .anthropicPassthrough : .openAIPassthrough
        default: return nil
        }
    }

    static func split(_ uri: String) -> (Substring, Substring?) {
        guard let mark = uri.firstIndex(of: "?") else { return (Substring(uri), nil) }
        return (uri[..<mark], uri[uri.index(after: mark)...])
    }

    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let hi = utf8.index(after: index)
                guard hi < utf8.endIndex, utf8.index(after: hi) < utf8.endIndex,
                    let value = UInt8(String(decoding: utf8[hi...utf8.index(after: hi)], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
                index = utf8.index(hi, offsetBy: 2)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// Why a request cannot be proxied.
public struct RouteError: Error, Sendable, Hashable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// Attribution a client sends in headers, which the proxy takes off before forwarding:
/// `x-spendwall-agent` (or agix's `X-Agent-Name`), `x-spendwall-session` and
/// `x-spendwall-tags: customer=acme, team=core`.
public struct HeaderAttribution: Sendable, Hashable {
    public var agent: String?
    public var session: String?
    public var tags: [String: String] = [:]

    public static let headerNames: Set<String> = [
        "x-spendwall-agent", "x-agent-name", "x-spendwall-session", "x-spendwall-tags", reservationHeader,
    ]

    /// Sent by the SDKs on a call they have already checked: the reservation it holds. A proxied
    /// call that carries a live one is passed through without a second check or ledger row.
    public static let reservationHeader = "x-spendwall-reservation"

    public init(headers: [(String, String)]) {
        for (name, value) in headers {
            let trimmed = value.trimmingSpaces
            switch name.lowercased() {
            case "x-spendwall-agent": agent = trimmed.isEmpty ? agent : trimmed
            case "x-agent-name": if agent == nil, !trimmed.isEmpty { agent = trimmed }
            case "x-spendwall-session": session = trimmed.isEmpty ? session : trimmed
            case "x-spendwall-tags":
                for pair in value.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2 else { continue }
                    let key = String(parts[0]).trimmingSpaces
                    if !key.isEmpty { tags[key] = String(parts[1]).trimmingSpaces }
                }
            default: break
            }
        }
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
