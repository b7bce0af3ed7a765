import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SpendwallCore

/// A client of the daemon's socket API (HTTP/1.1 + JSON over the Unix socket), used by the
/// CLI and the MCP server. Each call uses its own short connection.
public struct DaemonClient: Sendable {
    public let socketPath: String

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// One answer from the daemon.
    public struct Response: Sendable {
        public var status: Int
        public var body: Data

        /// Decodes the body as `T`.
        public func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try JSONDecoder().decode(T.self, from: body)
        }

        /// The body as a JSON object.
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        }

        /// The structured error's code and message, for non-2xx answers.
        public var error: (code: String, message: String)? {
            guard let error = json?["error"] as? [String: Any] else { return nil }
            return ((error["code"] as? String) ?? "unknown", (error["message"] as? String) ?? "")
        }
    }

    public func get(_ path: String) async throws -> Response {
        try await request(.GET, path, body: nil)
    }

    public func post(_ path: String, json: Data) async throws -> Response {
        try await request(.POST, path, body: json)
    }

    /// Sends one request. Throws ``SpendwallError`` with code `daemon_unreachable` when nothing
    /// answers on the socket.
    public func request(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> Response {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(unixDomainSocketPath: socketPath) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw SpendwallError(
                .daemonUnreachable,
                "no Spendwall daemon is answering on \(socketPath); start it with `spendwall start` (or `make run`)")
        }
        return try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            headers.add(name: "host", value: "localhost")
            headers.add(name: "connection", value: "close")
            if let body {
                headers.add(name: "content-type", value: "application/json")
                headers.add(name: "content-length", value: String(body.count))
            }
            var parts: [HTTPClientRequestPart] = [
                .head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers))
            ]
            if let body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            parts.append(.end(nil))
            try await outbound.write(contentsOf: parts)
            var status = 0
            var data = Data()
            for try await part in inbound {
                switch part {
                case .head(let head): status = Int(head.status.code)
                case .body(let buffer): data.append(contentsOf: buffer.readableBytesView)
                case .end: return Response(status: status, body: data)
                }
            }
            throw SpendwallError(.daemonUnreachable, "the daemon closed the connection before answering")
        }
    }

    /// One server-sent event from `GET /v1/events`.
    public struct ServerEvent: Sendable {
        public var kind: String
        /// The event's JSON: `{"id", "kind", "time_ms", "data": {...}}`.
        public var json: Data
    }

    /// Follows the live event stream until `handle` returns false or the daemon ends it.
    /// `onOpen` runs once the stream is established, before any event is handled.
    public func events(
        kinds: [String]? = nil, onOpen: @Sendable () async throws -> Void = {},
        _ handle: @Sendable (ServerEvent) async throws -> Bool
    ) async throws {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(unixDomainSocketPath: socketPath) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw SpendwallError(
                .daemonUnreachable,
                "no Spendwall daemon is answering on \(socketPath); start it with `spendwall start` (or `make run`)")
        }
        let query = kinds.map { "?kinds=" + $0.joined(separator: ",") } ?? ""
        try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            headers.add(name: "host", value: "localhost")
            try await outbound.write(
                contentsOf: [
                    .head(
                        HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v1/events" + query, headers: headers)),
                    .end(nil),
                ])
            var parser = ServerEventParser()
            for try await part in inbound {
                switch part {
                case .head(let head):
                    guard head.status == .ok else {
                        throw SpendwallError(
                            .badRequest, "the daemon refused the event stream (HTTP \(head.status.code))")
                    }
                    try await onOpen()
                case .body(let buffer):
                    for event in parser.feed(Array(buffer.readableBytesView)) {
                        if try await !handle(event) { return }
                    }
                case .end: return
                }
            }
        }
    }
}

/// Splits a server-sent event stream into events (comments and keep-alives dropped).
struct ServerEventParser {
    private var pending: [UInt8] = []

    mutating func feed(_ bytes: [UInt8]) -> [DaemonClient.ServerEvent] {
        pending += bytes.filter { $0 != 13 }
        var events: [DaemonClient.ServerEvent] = []
        while let end = pending.firstRange(of: [10, 10]) {
            let block = String(decoding: pending[..<end.lowerBound], as: UTF8.self)
            pending.removeSubrange(..<end.upperBound)
            var kind = "message"
            var data: [Substring] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("event:") {
                    kind = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
                } else if line.hasPrefix("data:") {
                    data.append(line.dropFirst(5).drop { $0 == " " })
                }
            }
            if !data.isEmpty {
                events.append(DaemonClient.ServerEvent(kind: kind, json: Data(data.joined(separator: "\n").utf8)))
            }
        }
        return events
    }
}
