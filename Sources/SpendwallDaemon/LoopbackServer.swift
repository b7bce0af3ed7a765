import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SpendwallConfig
import SpendwallCore
import SpendwallProxy
import Synchronization

/// Where the loopback listener stands, for `/v1/health` and `doctor`.
final class ListenerStatus: Sendable {
    enum State: Sendable, Equatable {
        case starting
        case listening(String)
        case failed(String)
    }

    private let current = Mutex(State.starting)
    var state: State {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}

/// The loopback HTTP listener (`[proxy] listen`, default 127.0.0.1:8787): the proxy that
/// forwards OpenAI and Anthropic calls (``ProxyForwarder``), the Prometheus text at
/// `/metrics`, Stripe's webhook at `/webhooks/stripe` (``StripeWebhook``), and the panel under
/// `/panel/` (``PanelServer``).
///
/// It binds loopback addresses only (``ListenAddress`` refuses anything else). If the address
/// cannot be bound — another program holds the port — the daemon keeps serving its socket API,
/// so SDK calls stay guarded, and says so loudly: an error in the log, `degraded` in
/// `/v1/health`, and a failing `spendwall doctor`.
///
/// Each connection is served by a task of its own (HTTP/1.1 keep-alive, one request at a
/// time). On SIGTERM it stops accepting, lets the requests in progress finish, and closes idle
/// connections.
final class LoopbackServer: Service, Sendable {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    private let address: ListenAddress
    private let status: ListenerStatus
    private let forwarder: ProxyForwarder
    private let stripe: StripeWebhook?
    private let metrics: @Sendable () -> [UInt8]
    private let panel: PanelServer?
    private let maxBodyBytes: Int
    private let logger: Logger
    private let connections = Mutex(OpenConnections())

    private struct OpenConnections {
        var idle: [ObjectIdentifier: any Channel] = [:]
        var draining = false
    }

    init(
        address: ListenAddress, status: ListenerStatus, forwarder: ProxyForwarder, stripe: StripeWebhook? = nil,
        panel: PanelServer?, maxBodyBytes: Int, logger: Logger, metrics: @escaping @Sendable () -> [UInt8]
    ) {
        self.stripe = stripe
        self.panel = panel
        self.address = address
        self.status = status
        self.forwarder = forwarder
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
        self.metrics = metrics
    }

    func run() async throws {
        let server: NIOAsyncChannel<Connection, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            let reason = "cannot listen on \(address): \(error)"
            status.state = .failed(reason)
            logger.error(
                "\(reason); the proxy and /metrics are unavailable (set [proxy] listen in spendwall.toml or SPENDWALL_PROXY_ADDR to a free loopback port)"
            )
            try? await gracefulShutdown()
            await forwarder.shutdown()
            return
        }
        let bound = server.channel.localAddress.flatMap { socket in
            socket.port.map { ListenAddress(host: socket.ipAddress ?? address.host, port: $0).description }
        }
        status.state = .listening(bound ?? address.description)
        logger.info("loopback listener on http://\(bound ?? address.description) (proxy, /metrics, /panel/)")
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                try? await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            let idle = self.connections.withLock { connections in
                connections.draining = true
                return Array(connections.idle.values)
            }
            server.channel.close(promise: nil)
            for channel in idle { channel.close(promise: nil) }
        }
        await forwarder.shutdown()
        logger.info("loopback listener stopped")
    }

    /// Serves one connection's requests in turn.
    private func serve(_ connection: Connection) async {
        let channel = connection.channel
        let id = ObjectIdentifier(channel)
        var peer: PeerIdentity?
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = ByteBuffer()
                var tooLarge = false
                guard markIdle(id, channel, true) else { return }
                for try await part in inbound {
                    switch part {
                    case .head(let requestHead):
                        markIdle(id, channel, false)
                        head = requestHead
                        body.clear()
                        let length = requestHead.headers.first(name: "content-length").flatMap(Int.init) ?? 0
                        tooLarge = length > maxBodyBytes
                    case .body(var chunk):
                        if body.readableBytes + chunk.readableBytes > maxBodyBytes { tooLarge = true }
                        if !tooLarge { body.writeBuffer(&chunk) }
                    case .end:
                        guard let requestHead = head else { continue }
                        head = nil
                        let keepAlive = try await respond(
                            to: requestHead, body: tooLarge ? nil : body, peer: &peer, channel: channel,
                            outbound: outbound)
                        guard keepAlive, markIdle(id, channel, true) else { return }
                    }
                }
            }
        } catch {
            logger.debug("loopback connection ended: \(error)")
        }
        markIdle(id, channel, false)
    }

    /// Records whether a connection waits between requests (closed at shutdown) or not; false
    /// once draining, when it should close.
    @discardableResult
    private func markIdle(_ id: ObjectIdentifier, _ channel: any Channel, _ idle: Bool) -> Bool {
        connections.withLock { connections in
            if idle { connections.idle[id] = channel } else { connections.idle.removeValue(forKey: id) }
            return !connections.draining
        }
    }

    private func respond(
        to head: HTTPRequestHead, body: ByteBuffer?, peer: inout PeerIdentity?, channel: any Channel,
        outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws -> Bool {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        if let panel, path == "/panel" || path.hasPrefix("/panel/") {
            if peer == nil { peer = forwarder.identify(channel) }
            return try await panel.respond(
                to: head, path: path, body: body, channel: channel, peer: peer ?? .unknown, outbound: outbound)
        }
        if path == "/metrics" {
            guard head.method == .GET || head.method == .HEAD else {
                return try await Self.write(
                    .error(SpendwallError(.methodNotAllowed, "/metrics takes GET"), status: .methodNotAllowed),
                    head: head, to: outbound)
            }
            return try await Self.write(
                LoopbackResponse(
                    status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics()),
                head: head, to: outbound)
        }
        guard let body else {
            return try await Self.write(
                .error(
                    SpendwallError(
                        .payloadTooLarge,
                        "the request body is larger than the \(maxBodyBytes)-byte limit ([daemon] max_body_bytes)"),
                    status: .payloadTooLarge),
                head: head, to: outbound, keepAlive: false)
        }
        if path == StripeWebhook.path, let stripe {
            return try await Self.write(
                await stripe.handle(method: head.method, headers: head.headers, body: body), head: head, to: outbound)
        }
        let route: ProxyRoute
        switch ProxyRoute.resolve(
            method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) })
        {
        case .success(let resolved): route = resolved
        case .failure(let error):
            return try await Self.write(
                .error(SpendwallError(.notFound, error.message), status: .notFound), head: head, to: outbound)
        }
        if peer == nil { peer = forwarder.identify(channel) }
        return try await forwarder.forward(
            head, body: body, route: route, peer: peer ?? .unknown, channel: channel, outbound: outbound)
    }

    /// Writes a whole response; returns whether the connection stays open.
    static func write(
        _ response: LoopbackResponse, head: HTTPRequestHead,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
        keepAlive: Bool = true
    ) async throws -> Bool {
        let open = keepAlive && head.isKeepAlive
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.count))
        headers.add(name: "connection", value: open ? "keep-alive" : "close")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        try await outbound.write(
            .head(HTTPResponseHead(version: head.version, status: response.status, headers: headers)))
        if head.method != .HEAD { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body)))) }
        try await outbound.write(.end(nil))
        return open
    }
}

/// A whole response of the loopback listener.
struct LoopbackResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    /// More headers (the panel's security headers, cookies, redirects).
    var headers: [(String, String)] = []

    static func error(_ error: SpendwallError, status: HTTPResponseStatus) -> LoopbackResponse {
        LoopbackResponse(
            status: status, contentType: "application/json", body: APIResponse.error(error, status: status).body)
    }

    static func json(_ body: APIResponse) -> LoopbackResponse {
        LoopbackResponse(status: body.status, contentType: "application/json", body: body.body)
    }
}
