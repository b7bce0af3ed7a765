import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SpendwallConfig
import SpendwallCore
import Synchronization

/// The loopback HTTP listener (`[proxy] listen`, default 127.0.0.1:8787). It serves the
/// Prometheus text at `/metrics` today; the proxy and the panel are routes it will gain.
///
/// It binds loopback addresses only (``ListenAddress`` refuses anything else). If the address
/// cannot be bound — another program holds the port — the daemon keeps serving its socket API,
/// so SDK calls stay guarded, and says so loudly: an error in the log, `degraded` in
/// `/v1/health`, and a failing `spendwall doctor`.
final class LoopbackServer: Service, Sendable {
    enum Status: Sendable, Equatable {
        case starting
        case listening(String)
        case failed(String)
    }

    private let address: ListenAddress
    private let routes: @Sendable (HTTPRequestHead) -> LoopbackResponse
    private let logger: Logger
    private let current = Mutex(Status.starting)

    init(address: ListenAddress, logger: Logger, routes: @escaping @Sendable (HTTPRequestHead) -> LoopbackResponse) {
        self.address = address
        self.logger = logger
        self.routes = routes
    }

    var status: Status { current.withLock { $0 } }

    func run() async throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(LoopbackHandler(routes: self.routes))
                }
            }
        let server: any Channel
        do {
            server = try await bootstrap.bind(host: address.host, port: address.port).get()
        } catch {
            let reason = "cannot listen on \(address): \(error)"
            current.withLock { $0 = .failed(reason) }
            logger.error(
                "\(reason); /metrics is unavailable (set [proxy] listen in spendwall.toml or SPENDWALL_PROXY_ADDR to a free loopback port)"
            )
            try? await gracefulShutdown()
            return
        }
        let bound = server.localAddress.map { Self.describe($0, fallback: address) } ?? address.description
        current.withLock { $0 = .listening(bound) }
        logger.info("loopback listener on http://\(bound) (/metrics)")
        try? await gracefulShutdown()
        try? await server.close()
    }

    static func describe(_ socket: SocketAddress, fallback: ListenAddress) -> String {
        guard let port = socket.port else { return fallback.description }
        return ListenAddress(host: socket.ipAddress ?? fallback.host, port: port).description
    }
}

/// A whole response of the loopback listener.
struct LoopbackResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]

    static func error(_ error: SpendwallError, status: HTTPResponseStatus) -> LoopbackResponse {
        LoopbackResponse(
            status: status, contentType: "application/json", body: APIResponse.error(error, status: status).body)
    }
}

/// Answers each request on the connection's event loop once it has been read whole.
final class LoopbackHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: @Sendable (HTTPRequestHead) -> LoopbackResponse
    private var head: HTTPRequestHead?

    init(routes: @escaping @Sendable (HTTPRequestHead) -> LoopbackResponse) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead): head = requestHead
        case .body: break
        case .end:
            guard let requestHead = head else { return }
            head = nil
            let response = routes(requestHead)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: response.contentType)
            headers.add(name: "content-length", value: String(response.body.count))
            headers.add(name: "connection", value: requestHead.isKeepAlive ? "keep-alive" : "close")
            context.write(
                wrapOutboundOut(
                    .head(HTTPResponseHead(version: requestHead.version, status: response.status, headers: headers))),
                promise: nil)
            if requestHead.method != .HEAD {
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))),
                    promise: nil)
            }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !requestHead.isKeepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
        }
    }
}
