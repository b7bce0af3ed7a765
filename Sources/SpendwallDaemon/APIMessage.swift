import Foundation
import NIOCore
import NIOHTTP1
import SpendwallCore
import SpendwallLedger

/// A request to the socket API, read whole.
struct APIRequest: Sendable {
    var method: HTTPMethod
    var path: String
    var query: [String: String]
    var body: ByteBuffer

    init(method: HTTPMethod, path: String, query: [String: String] = [:], body: ByteBuffer) {
        self.method = method
        self.path = path
        self.query = query
        self.body = body
    }

    init(head: HTTPRequestHead, body: ByteBuffer) {
        method = head.method
        let parts = head.uri.split(separator: "?", maxSplits: 1)
        path = parts.first.map(String.init) ?? "/"
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                let key = String(kv[0]).removingPercentEncodingSafely
                query[key] = kv.count == 2 ? String(kv[1]).removingPercentEncodingSafely : ""
            }
        }
        self.query = query
        self.body = body
    }
}

/// How the socket API answers a request.
enum APIReply: Sendable {
    /// Decided already.
    case now(APIResponse)
    /// Answered once the ledger row is committed (or cannot be).
    case committed(SpendEvent, @Sendable (Result<AppendResult, SpendwallError>) -> APIResponse)
    /// Needs async work (ledger reads, reloads).
    case later(@Sendable () async -> APIResponse)
    /// Becomes a live event stream of these kinds (nil: all).
    case subscribe(Set<String>?)
}

/// A response from the socket API: a status and a JSON body.
struct APIResponse: Sendable {
    var status: HTTPResponseStatus
    var body: [UInt8]

    init(status: HTTPResponseStatus = .ok, json: [UInt8]) {
        self.status = status
        self.body = json
    }

    /// Encodes a body as JSON.
    static func json<T: Encodable>(_ value: T, status: HTTPResponseStatus = .ok) -> APIResponse {
        do {
            return APIResponse(status: status, json: Array(try JSONEncoder().encode(value)))
        } catch {
            return .error(
                SpendwallError(.internalError, "cannot encode the response: \(error)"), status: .internalServerError)
        }
    }

    /// Writes a body that knows its own JSON (the answers sent on every call).
    static func json<T: Encodable & JSONWritable>(_ value: T, status: HTTPResponseStatus = .ok) -> APIResponse {
        APIResponse(status: status, json: value.jsonBytes)
    }

    /// The structured error body: `{"error": {"code": ..., "message": ...}}`.
    static func error(_ error: SpendwallError, status: HTTPResponseStatus, cap: CapJSON? = nil) -> APIResponse {
        let body = ErrorBody(error: ErrorJSON(code: error.code.rawValue, message: error.message, cap: cap))
        return APIResponse(status: status, json: body.jsonBytes)
    }

    static func badRequest(_ message: String) -> APIResponse {
        .error(SpendwallError(.badRequest, message), status: .badRequest)
    }
}

extension String {
    fileprivate var removingPercentEncodingSafely: String {
        replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? self
    }
}
