import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SpendwallCore
import Synchronization

/// The socket API's HTTP/1.1 server on the Unix socket (bound here, or passed in by systemd
/// socket activation). Each connection's peer is read from the kernel once, when it connects.
final class SocketServer: Service, Sendable {
    private let socketPath: String
    private let activatedFD: Int32?
    private let api: SocketAPI
    private let state: DaemonState
    private let maxBodyBytes: Int
    private let logger: Logger
    private let onReady: @Sendable () -> Void
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let draining = Atomic<Bool>(false)

    typealias Connection = (channel: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, peer: PeerCredentials?)

    init(
        socketPath: String, activatedFD: Int32?, api: SocketAPI, state: DaemonState, maxBodyBytes: Int,
        logger: Logger, onReady: @escaping @Sendable () -> Void
    ) {
        self.socketPath = socketPath
        self.activatedFD = activatedFD
        self.api = api
        self.state = state
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
        self.onReady = onReady
    }

    func run() async throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
        let server: NIOAsyncChannel<Connection, Never>
        if let fd = activatedFD {
            server = try await bootstrap.bind(fd) { self.makeConnection($0) }
            if let path = SocketFile.boundPath(of: fd) { try SocketFile.tighten(path) }
            logger.info("serving on \(SocketFile.boundPath(of: fd) ?? socketPath) (socket activation)")
        } else {
            try SocketFile.prepare(socketPath)
            server = try await bootstrap.bind(unixDomainSocketPath: socketPath) { self.makeConnection($0) }
            guard chmod(socketPath, 0o600) == 0 else {
                throw SpendwallError(.internalError, "cannot set mode 0600 on \(socketPath): \(String(cString: strerror(errno)))")
            }
            logger.info("serving on \(socketPath)")
        }
        onReady()
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                do {
                    try await server.executeThenClose { inbound in
                        for try await connection in inbound {
                            group.addTask { await self.serve(connection) }
                        }
                    }
                } catch ChannelError.alreadyClosed {
                    // Closed by shutdown.
                }
            }
        } onGracefulShutdown: {
            Systemd.notify("STOPPING=1")
            self.draining.store(true, ordering: .relaxed)
            server.channel.close(promise: nil)
            for channel in self.connections.withLock({ Array($0.values) }) {
                channel.close(mode: .input, promise: nil)
            }
        }
        if activatedFD == nil { unlink(socketPath) }
        logger.info("socket server stopped")
    }

    private func makeConnection(_ channel: any Channel) -> EventLoopFuture<Connection> {
        let wrapped = channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            try sync.configureHTTPServerPipeline(withErrorHandling: false)
            try sync.addHandler(JSONProtocolErrorHandler())
            try sync.addHandler(IdleStateHandler(readTimeout: .minutes(5)))
            try sync.addHandler(IdleConnectionCloser())
            return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                wrappingChannelSynchronously: channel)
        }
        return wrapped.flatMap { asyncChannel in
            PeerCredentials.read(from: channel)
                .map { Connection(channel: asyncChannel, peer: $0) }
                .recover { _ in Connection(channel: asyncChannel, peer: nil) }
        }
    }

    private func serve(_ connection: Connection) async {
        let channel = connection.channel.channel
        let id = ObjectIdentifier(channel)
        connections.withLock { $0[id] = channel }
        defer { _ = connections.withLock { $0.removeValue(forKey: id) } }
        let peer = state.identify(connection.peer)
        let forbidden = connection.peer.map { $0.uid != getuid() } ?? true
        if forbidden {
            logger.warning("refusing peer pid=\(peer.pid.map(String.init) ?? "?") uid=\(peer.uid.map(String.init) ?? "?"): not the daemon's uid")
        }
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = channel.allocator.buffer(capacity: 0)
                var received = 0
                for try await part in inbound {
                    switch part {
                    case .head(let requestHead):
                        head = requestHead
                        body.clear()
                        received = 0
                        if let length = requestHead.headers.first(name: "content-length").flatMap(Int.init), length > maxBodyBytes {
                            received = length
                        }
                    case .body(let chunk):
                        received += chunk.readableBytes
                        if received > 64 << 20 { return }
                        if received <= maxBodyBytes { body.writeImmutableBuffer(chunk) }
                    case .end:
                        guard let requestHead = head else { continue }
                        head = nil
                        let tooLarge = received > maxBodyBytes
                        let response: APIResponse
                        if forbidden {
                            response = .error(
                                SpendwallError(.forbiddenPeer, "this daemon serves only uid \(getuid()); your process runs as uid \(peer.uid.map(String.init) ?? "unknown")"),
                                status: .forbidden)
                        } else if tooLarge {
                            response = .error(
                                SpendwallError(.payloadTooLarge, "the request body is larger than the \(maxBodyBytes)-byte limit ([daemon] max_body_bytes)"),
                                status: .payloadTooLarge)
                        } else {
                            response = await api.handle(APIRequest(head: requestHead, body: body), peer: peer)
                        }
                        let keepAlive = requestHead.isKeepAlive && !tooLarge && !forbidden && !draining.load(ordering: .relaxed)
                        try await outbound.write(contentsOf: Self.parts(response, version: requestHead.version, keepAlive: keepAlive))
                        if !keepAlive { return }
                    }
                }
            }
        } catch {
            logger.debug("connection ended: \(error)")
        }
    }

    private static func parts(_ response: APIResponse, version: HTTPVersion, keepAlive: Bool) -> [HTTPServerResponsePart] {
        var headers = HTTPHeaders()
        headers.reserveCapacity(3)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(response.body.count))
        headers.add(name: "connection", value: keepAlive ? "keep-alive" : "close")
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
        return [.head(head), .body(.byteBuffer(ByteBuffer(bytes: response.body))), .end(nil)]
    }
}

/// Answers malformed HTTP (including a request cut off mid-way) with the structured JSON
/// error, then closes the connection.
final class JSONProtocolErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var responding = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError, !responding else {
            context.fireErrorCaught(error)
            return
        }
        responding = true
        let message = error as? HTTPParserError == .invalidEOFState
            ? "the request ended before it was complete"
            : "malformed HTTP request (\(error))"
        let body = APIResponse.error(SpendwallError(.badRequest, message), status: .badRequest).body
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.count))
        headers.add(name: "connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

/// Closes connections that stay silent past the idle timeout.
final class IdleConnectionCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
