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
///
/// Requests are answered by an ``APIChannelHandler`` on the event loop that read them: a check
/// is decided there without a hop to another thread. Work that must wait (ledger reads, reloads)
/// runs in this service's task group, and a report is answered when the writer commits it.
final class SocketServer: Service, Sendable {
    private let socketPath: String
    private let activatedFD: Int32?
    private let api: SocketAPI
    private let state: DaemonState
    private let maxBodyBytes: Int
    private let logger: Logger
    private let onReady: @Sendable () -> Void
    private let connections = Mutex(Connections())
    private let work: AsyncStream<DeferredReply>
    private let workQueue: AsyncStream<DeferredReply>.Continuation

    struct Connections {
        var open: [ObjectIdentifier: any Channel] = [:]
        var draining = false
    }

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
        (work, workQueue) = AsyncStream.makeStream()
    }

    /// Silent connections are closed after this; it outlasts a check held for approval, whose
    /// client reads nothing while it waits.
    var idleTimeout: TimeAmount {
        let approvalMS = api.approvalTimeout.components.seconds * 1000 + 60_000
        return .milliseconds(max(300_000, approvalMS))
    }

    /// True once shutdown has begun: answers then close their connection.
    var isDraining: Bool { connections.withLock { $0.draining } }

    func run() async throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { self.accept($0) }
        let server: any Channel
        if let fd = activatedFD {
            server = try await bootstrap.withBoundSocket(fd).get()
            if let path = SocketFile.boundPath(of: fd) { try SocketFile.tighten(path) }
            logger.info("serving on \(SocketFile.boundPath(of: fd) ?? socketPath) (socket activation)")
        } else {
            try SocketFile.prepare(socketPath)
            server = try await bootstrap.bind(unixDomainSocketPath: socketPath).get()
            guard chmod(socketPath, 0o600) == 0 else {
                server.close(promise: nil)
                throw SpendwallError(
                    .internalError, "cannot set mode 0600 on \(socketPath): \(String(cString: strerror(errno)))")
            }
            logger.info("serving on \(socketPath)")
        }
        onReady()
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await deferred in work {
                    group.addTask { deferred.complete(await deferred.run()) }
                }
            }
        } onGracefulShutdown: {
            self.drain(server)
        }
        if activatedFD == nil { unlink(socketPath) }
        logger.info("socket server stopped")
    }

    /// Stops accepting, lets every connection finish the request it is on (NIO's HTTP pipeline
    /// handler closes an idle connection on the quiesce event, a busy one after its response), and ends the work
    /// queue once the last one has closed (no request can be waiting for work by then).
    private func drain(_ server: any Channel) {
        Systemd.notify("STOPPING=1")
        let open = connections.withLock { connections in
            connections.draining = true
            return Array(connections.open.values)
        }
        server.close(promise: nil)
        api.events.closeAll()
        api.approvals.close(reason: "the daemon is stopping")
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        EventLoopFuture.andAllComplete(open.map(\.closeFuture), on: server.eventLoop).whenComplete { _ in
            self.workQueue.finish()
        }
    }

    /// Sets up an accepted connection on its event loop, before it becomes active.
    private func accept(_ channel: any Channel) -> EventLoopFuture<Void> {
        PeerCredentials.read(from: channel)
            .recover { _ in nil }
            .flatMapThrowing { credentials in
                let id = ObjectIdentifier(channel)
                let admitted = self.connections.withLock { connections in
                    if connections.draining { return false }
                    connections.open[id] = channel
                    return true
                }
                guard admitted else { throw ChannelError.ioOnClosedChannel }
                channel.closeFuture.whenComplete { _ in
                    _ = self.connections.withLock { $0.open.removeValue(forKey: id) }
                }
                let peer = self.state.identify(credentials)
                let forbidden = credentials.map { $0.uid != getuid() } ?? true
                if forbidden {
                    self.logger.warning(
                        "refusing peer pid=\(peer.pid.map(String.init) ?? "?") uid=\(peer.uid.map(String.init) ?? "?"): not the daemon's uid"
                    )
                }
                let sync = channel.pipeline.syncOperations
                try sync.configureHTTPServerPipeline(withErrorHandling: false)
                try sync.addHandler(JSONProtocolErrorHandler())
                try sync.addHandler(IdleStateHandler(readTimeout: self.idleTimeout), name: "idle-timeout")
                try sync.addHandler(IdleConnectionCloser(), name: "idle-closer")
                try sync.addHandler(
                    APIChannelHandler(
                        server: self, api: self.api, peer: peer, forbidden: forbidden, maxBodyBytes: self.maxBodyBytes))
            }
    }

    /// Hands a reply that needs async work to the task group; `complete` runs with its answer.
    func schedule(
        _ run: @escaping @Sendable () async -> APIResponse, complete: @escaping @Sendable (APIResponse) -> Void
    ) {
        if case .terminated = workQueue.yield(DeferredReply(run: run, complete: complete)) {
            complete(.error(SpendwallError(.unavailable, "the daemon is shutting down"), status: .serviceUnavailable))
        }
    }

}

/// Async work for one reply, and where its answer goes.
struct DeferredReply: Sendable {
    let run: @Sendable () async -> APIResponse
    let complete: @Sendable (APIResponse) -> Void
}

/// Reads one request at a time (the HTTP pipeline handler holds back pipelined ones until the
/// response is written) and writes its answer.
final class APIChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: SocketServer
    private let api: SocketAPI
    private let peer: PeerIdentity
    private let forbidden: Bool
    private let maxBodyBytes: Int
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var received = 0

    init(server: SocketServer, api: SocketAPI, peer: PeerIdentity, forbidden: Bool, maxBodyBytes: Int) {
        self.server = server
        self.api = api
        self.peer = peer
        self.forbidden = forbidden
        self.maxBodyBytes = maxBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body.clear()
            received = 0
            if let length = requestHead.headers.first(name: "content-length").flatMap(Int.init), length > maxBodyBytes {
                received = length
            }
        case .body(var chunk):
            received += chunk.readableBytes
            if received <= maxBodyBytes { body.writeBuffer(&chunk) }
        case .end:
            guard let requestHead = head else { return }
            head = nil
            respond(to: requestHead, on: context.channel)
        }
    }

    private func respond(to requestHead: HTTPRequestHead, on channel: any Channel) {
        let tooLarge = received > maxBodyBytes
        let keepAlive = requestHead.isKeepAlive && !tooLarge && !forbidden
        let version = requestHead.version
        let send: @Sendable (APIResponse) -> Void = { [server] response in
            Self.write(response, on: channel, version: version, keepAlive: keepAlive && !server.isDraining)
        }
        if forbidden {
            send(
                .error(
                    SpendwallError(
                        .forbiddenPeer,
                        "this daemon serves only uid \(getuid()); your process runs as uid \(peer.uid.map(String.init) ?? "unknown")"
                    ),
                    status: .forbidden))
            return
        }
        if tooLarge {
            send(
                .error(
                    SpendwallError(
                        .payloadTooLarge,
                        "the request body is larger than the \(maxBodyBytes)-byte limit ([daemon] max_body_bytes)"),
                    status: .payloadTooLarge))
            return
        }
        let request = APIRequest(head: requestHead, body: body)
        body = ByteBuffer()
        switch api.reply(to: request, peer: peer) {
        case .now(let response):
            send(response)
        case .committed(let event, let answer):
            api.writer.append(event, keepOnFailure: true) { result in send(answer(result)) }
        case .later(let run):
            server.schedule(run, complete: send)
        case .subscribe(let kinds):
            api.events.subscribe(channel, kinds: kinds, version: version)
        }
    }

    /// Writes a whole response from any thread; closes the connection after it unless kept alive.
    private static func write(_ response: APIResponse, on channel: any Channel, version: HTTPVersion, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(3)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(response.body.count))
        headers.add(name: "connection", value: keepAlive ? "keep-alive" : "close")
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
        let body = channel.allocator.buffer(bytes: response.body)
        let flush: @Sendable () -> Void = {
            channel.write(HTTPServerResponsePart.head(head), promise: nil)
            channel.write(HTTPServerResponsePart.body(.byteBuffer(body)), promise: nil)
            let done = channel.writeAndFlush(HTTPServerResponsePart.end(nil))
            if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
        }
        if channel.eventLoop.inEventLoop { flush() } else { channel.eventLoop.execute(flush) }
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
        let message =
            error as? HTTPParserError == .invalidEOFState
            ? "the request ended before it was complete"
            : "malformed HTTP request (\(error))"
        let body = APIResponse.error(SpendwallError(.badRequest, message), status: .badRequest).body
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.count))
        headers.add(name: "connection", value: "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))),
            promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
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
