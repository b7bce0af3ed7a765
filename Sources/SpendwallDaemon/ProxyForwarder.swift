import AsyncHTTPClient
import CompressNIO
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SpendwallConfig
import SpendwallCore
import SpendwallLedger
import SpendwallPeer
import SpendwallPolicy
import SpendwallPricing
import SpendwallProxy
import Synchronization

/// Forwards a proxied call upstream and its answer back, unchanged, while the policy engine
/// decides it first and the ledger records what it used.
///
/// Bytes pass as they are: request and response bodies and headers are not rewritten (only the
/// hop-by-hop headers and Spendwall's own attribution headers are left out), and the answer
/// streams chunk by chunk as it arrives. The usage is read on the side (``UsageReader``).
/// Billed calls are checked before anything goes upstream: a refused one gets a 402 with the
/// structured error body, and nothing is sent. A kill switch covering a call in flight, or a
/// client that goes away, cancels the upstream request and cuts the answer; each call leaves
/// exactly one ledger row with its outcome.
struct ProxyForwarder: Sendable {
    let api: SocketAPI
    let state: DaemonState
    let client: HTTPClient
    let openAIUpstream: String
    let anthropicUpstream: String
    /// Keys injected for clients that send the placeholder (opt-in; see ``ProviderKeys``).
    let keys: ProviderKeys
    /// `[proxy] cost_headers`: plain answers carry their cost (off by default).
    let costHeaders: Bool
    /// `[proxy] openai_stream_usage = "inject"`: ask OpenAI streams for usage, hide the extra chunk.
    let injectStreamUsage: Bool
    let logger: Logger

    /// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1), and
    /// Spendwall's own attribution headers: neither is forwarded.
    static let notForwarded = Set([
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
    ]).union(HeaderAttribution.headerNames)

    /// The upstream client: pooled keep-alive connections, nothing decompressed or rewritten.
    static func makeClient(connectTimeoutMS: Int64, readTimeoutMS: Int64) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(
            connect: .milliseconds(connectTimeoutMS), read: .milliseconds(readTimeoutMS))
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    func shutdown() async {
        try? await client.shutdown()
    }

    /// The process at the other end of a loopback connection (once per connection).
    func identify(_ channel: any Channel) -> PeerIdentity {
        guard let clientPort = channel.remoteAddress?.port, let serverPort = channel.localAddress?.port,
            let owner = LoopbackPeer().owner(clientPort: clientPort, serverPort: serverPort)
        else { return .unknown }
        return state.identify(PeerCredentials(pid: owner.pid, uid: owner.uid, gid: 0))
    }

    /// Handles one request; returns whether the connection stays open.
    func forward(
        _ head: HTTPRequestHead, body: ByteBuffer, route: ProxyRoute, peer: PeerIdentity, channel: any Channel,
        outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws -> Bool {
        let headers = head.headers.map { ($0.name, $0.value) }
        let upstream = route.endpoint.provider == .anthropic ? anthropicUpstream : openAIUpstream
        var request = HTTPClientRequest(url: upstream + route.upstreamPath)
        request.method = head.method
        for (name, value) in headers where !Self.notForwarded.contains(name.lowercased()) {
            request.headers.add(name: name, value: injectingKey(name: name, value: value, for: route.endpoint.provider))
        }
        if body.readableBytes > 0 || head.method == .POST { request.body = .bytes(body) }

        // A call an SDK has already checked (it holds a live reservation, and the SDK reports
        // it) is not checked or recorded twice: a wrapped client whose base URL is this proxy,
        // as under `spendwall run`.
        // Under a session's path, only a reservation made for that session counts: its cap must
        // have been checked.
        let checkedBySDK =
            headers.first { $0.0.lowercased() == HeaderAttribution.reservationHeader }
            .flatMap { api.engine.reservation($0.1.trimmingCharacters(in: .whitespaces)) }
            .map { route.session == nil || $0.attributes.session == route.session } ?? false
        guard route.endpoint.isBilled, !checkedBySDK else {
            let end = await relay(
                request, head: head, outbound: outbound, record: FlightRecord(), endpoint: nil,
                stop: StopSignal(channel))
            return try await finishUnbilled(end, head: head, outbound: outbound)
        }

        let json = body.withUnsafeReadableBytes { try? JSONParser.parse($0) }
        guard let json, let model = json["model"]?.stringValue, !model.isEmpty else {
            return try await LoopbackServer.write(
                .error(
                    SpendwallError(
                        .badRequest, "the proxy needs a JSON request body with a \"model\" to check the call's cost"),
                    status: .badRequest),
                head: head, to: outbound)
        }
        let live = api.state.live
        let attribution = HeaderAttribution(headers: headers)
        let session = route.session ?? attribution.session
        // A `spendwall run` session's calls carry its agent and tags (the call's own win).
        let call = api.state.sessions.attributed(
            CallAttributes(
                provider: route.endpoint.provider, model: model, agent: route.agent ?? attribution.agent,
                app: peer.app, session: session, tags: live.redactor.redact(attribution.tags)))
        if let refusal = api.failClosedRefusal(strict: false, failMode: live.failMode) {
            return try await LoopbackServer.write(.json(refusal), head: head, to: outbound)
        }
        var localEstimate = live.estimator.estimate(json, model: model, provider: route.endpoint.provider)
        if route.endpoint.provider == .anthropic, live.configuration.anthropicCountTokens,
            let counter = api.anthropicCount
        {
            await localEstimate.refine(with: counter, request: json, model: model)
        }
        let estimate = localEstimate
        var hideUsageChunk = false
        if let asked = Self.askingForUsage(json, endpoint: route.endpoint), injectStreamUsage {
            request.body = .bytes(ByteBuffer(bytes: asked))
            hideUsageChunk = true
        }
        let held = SocketAPI.HeldCheck(
            call: call, estimate: estimate, peer: peer, path: session == nil ? .proxy : .session, strict: false)
        let answer: CheckAnswer
        switch await api.gate(held) {
        case .failure(let error, let status):
            return try await LoopbackServer.write(.error(error, status: status), head: head, to: outbound)
        case .answer(let decided): answer = decided
        }
        guard answer.decision == "allow", let reservationID = answer.reservation_id else {
            // Blocked, killed or not approved: 402 with the same error body, nothing sent upstream.
            let error = answer.error ?? ErrorJSON(code: "cap_exceeded", message: answer.reason ?? answer.decision)
            return try await LoopbackServer.write(
                .json(.json(ErrorBody(error: error), status: .paymentRequired)), head: head, to: outbound)
        }

        let started = ContinuousClock.now
        let stop = StopSignal(channel)
        let token = api.inFlight.register(call) { stop.fire(.killed) }
        let reader = FlightRecord()
        let once = Once()
        let settleNow: @Sendable (RelayEnd) -> SpendEvent? = { end in
            guard once.first() else { return nil }
            return settle(
                reservationID, end: end, read: reader.finish(), estimate: estimate,
                durationMS: (ContinuousClock.now - started).microseconds / 1000)
        }
        var withCost: (@Sendable (Int) -> [(String, String)])?
        if costHeaders {
            withCost = { (status: Int) -> [(String, String)] in
                Self.costHeaders(settleNow(RelayEnd.completed(status: status)))
            }
        }
        let end = await relay(
            request, head: head, outbound: outbound, record: reader, endpoint: route.endpoint, stop: stop,
            costHeaders: withCost, hideUsageChunk: hideUsageChunk)
        api.inFlight.remove(token)
        _ = settleNow(end)
        switch end {
        case .completed: return head.isKeepAlive
        case .upstreamUnreachable(let error):
            return try await LoopbackServer.write(
                .error(
                    SpendwallError(.upstreamUnavailable, "could not reach \(upstream): \(error)"), status: .badGateway),
                head: head, to: outbound)
        case .broken, .stopped:
            channel.close(promise: nil)
            return false
        }
    }

    /// The header value to send: the configured key in place of the placeholder key, when the
    /// client asked for injection this way; anything else unchanged.
    func injectingKey(name: String, value: String, for provider: Provider) -> String {
        guard !keys.isEmpty else { return value }
        switch (provider, name.lowercased()) {
        case (.openai, "authorization") where value == "Bearer \(keys.placeholder)":
            return keys.openAI.map { "Bearer \($0)" } ?? value
        case (.anthropic, "x-api-key") where value == keys.placeholder:
            return keys.anthropic ?? value
        case (.anthropic, "authorization") where value == "Bearer \(keys.placeholder)":
            return keys.anthropic.map { "Bearer \($0)" } ?? value
        default: return value
        }
    }

    /// How a relayed call ended.
    enum RelayEnd: Sendable {
        /// The whole answer was forwarded.
        case completed(status: Int)
        /// Upstream could not be reached; nothing was sent to the client.
        case upstreamUnreachable(String)
        /// The answer began and then failed (upstream broke off, or the client could not be written).
        case broken(status: Int)
        /// A kill switch or the client's disconnect stopped it.
        case stopped(StopSignal.Reason, status: Int?)
    }

    /// Sends the request upstream and streams the answer to the client until it ends or `stop`
    /// fires, whichever comes first.
    private func relay(
        _ request: HTTPClientRequest, head: HTTPRequestHead,
        outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
        record: FlightRecord, endpoint: ProxyEndpoint?, stop: StopSignal,
        costHeaders: (@Sendable (Int) -> [(String, String)])? = nil, hideUsageChunk: Bool = false
    ) async -> RelayEnd {
        await withTaskGroup(of: RelayEnd?.self) { group in
            group.addTask {
                let response: HTTPClientResponse
                do {
                    response = try await client.execute(request, timeout: .hours(2))
                } catch {
                    return Task.isCancelled ? nil : .upstreamUnreachable("\(error)")
                }
                let code = Int(response.status.code)
                record.status = code
                if let endpoint {
                    let contentType = response.headers.first(name: "content-type")
                    record.start(
                        UsageReader(endpoint: endpoint, contentType: contentType),
                        contentEncoding: response.headers.first(name: "content-encoding"))
                }
                var headers = HTTPHeaders()
                for (name, value) in response.headers
                where !Self.notForwarded.contains(name.lowercased())
                    || name.lowercased() == "content-length"
                {
                    headers.add(name: name, value: value)
                }
                let streaming =
                    response.headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") ?? false
                if let costHeaders, !streaming, code < 400 {
                    // A plain answer with its cost in the headers: read whole, settled, then sent.
                    do {
                        var body: [ByteBuffer] = []
                        for try await chunk in response.body {
                            record.feed(chunk)
                            body.append(chunk)
                        }
                        for (name, value) in costHeaders(code) { headers.add(name: name, value: value) }
                        try await outbound.write(
                            .head(HTTPResponseHead(version: head.version, status: response.status, headers: headers)))
                        for chunk in body { try await outbound.write(.body(.byteBuffer(chunk))) }
                        try await outbound.write(.end(nil))
                    } catch {
                        return Task.isCancelled ? nil : .broken(status: code)
                    }
                    return .completed(status: code)
                }
                // The usage chunk the proxy asked for is read, then left out of what the client sees.
                var filter = hideUsageChunk && streaming ? UsageChunkFilter() : nil
                if filter != nil { headers.remove(name: "content-length") }
                do {
                    try await outbound.write(
                        .head(HTTPResponseHead(version: head.version, status: response.status, headers: headers)))
                    for try await chunk in response.body {
                        record.feed(chunk)
                        if filter == nil {
                            try await outbound.write(.body(.byteBuffer(chunk)))
                        } else if let bytes = filter?.feed(chunk.readableBytesView), !bytes.isEmpty {
                            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
                        }
                    }
                    if let rest = filter?.finish(), !rest.isEmpty {
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: rest))))
                    }
                    try await outbound.write(.end(nil))
                } catch {
                    return Task.isCancelled ? nil : .broken(status: code)
                }
                return .completed(status: code)
            }
            group.addTask {
                let reason = await stop.wait()
                return Task.isCancelled ? nil : .stopped(reason, status: nil)
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            stop.fire(.finished)
            switch first {
            case .stopped(let reason, _): return .stopped(reason, status: record.status)
            case let end?: return end
            case nil: return .stopped(.finished, status: record.status)
            }
        }
    }

    private func finishUnbilled(
        _ end: RelayEnd, head: HTTPRequestHead, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws -> Bool {
        switch end {
        case .completed: return head.isKeepAlive
        case .upstreamUnreachable(let error):
            return try await LoopbackServer.write(
                .error(
                    SpendwallError(.upstreamUnavailable, "could not reach the provider: \(error)"), status: .badGateway),
                head: head, to: outbound)
        case .broken, .stopped: return false
        }
    }

    /// The request body re-encoded with `stream_options.include_usage = true`, for an OpenAI chat
    /// or completions stream that did not ask for usage; nil when there is nothing to add.
    static func askingForUsage(_ json: JSONValue, endpoint: ProxyEndpoint) -> [UInt8]? {
        guard endpoint == .openAIChat || endpoint == .openAICompletions, case .object(var body) = json,
            body["stream"] == .bool(true)
        else { return nil }
        var options: [String: JSONValue] = [:]
        if case .object(let given)? = body["stream_options"] { options = given }
        guard options["include_usage"] != .bool(true) else { return nil }
        options["include_usage"] = .bool(true)
        body["stream_options"] = .object(options)
        return (try? JSONEncoder().encode(JSONValue.object(body))).map(Array.init)
    }

    /// `x-spendwall-cost-usd` (exact, nine decimals), `-input-tokens` (all input kinds) and
    /// `-output-tokens` of a settled call.
    static func costHeaders(_ row: SpendEvent?) -> [(String, String)] {
        guard let row else { return [] }
        let nanos = row.costNanoUSD
        let fraction = String(nanos % 1_000_000_000)
        let usd = "\(nanos / 1_000_000_000)." + String(repeating: "0", count: 9 - fraction.count) + fraction
        let input = row.usage.inputTokens + row.usage.cacheReadTokens + row.usage.cacheWriteTokens
        return [
            ("x-spendwall-cost-usd", usd), ("x-spendwall-input-tokens", String(input)),
            ("x-spendwall-output-tokens", String(row.usage.outputTokens)),
        ]
    }

    /// Settles the reservation to what the call used and writes its row.
    @discardableResult
    private func settle(
        _ reservationID: String, end: RelayEnd, read: (reading: UsageReading, readable: Bool)?,
        estimate: CallEstimate, durationMS: Int64
    ) -> SpendEvent? {
        let outcome: Outcome
        var status: Int?
        switch end {
        case .completed(let code):
            status = code
            outcome = code < 400 ? .ok : .error
        case .upstreamUnreachable: outcome = .error
        case .broken(let code):
            status = code
            outcome = code < 400 ? .partial : .error
        case .stopped(let reason, let code):
            status = code
            outcome = reason == .killed ? .killed : .disconnected
        }
        // An error answer costs nothing; a call that produced anything is charged what it
        // reported, and what it did not report is estimated. An answer that could not be read
        // at all is charged its worst case, as reserved.
        var usage = Usage()
        var estimated = false
        if outcome != .error, let read {
            estimated = !read.readable || !read.reading.isComplete
            usage =
                read.readable
                ? read.reading.charged(estimatedInput: estimate.inputTokens)
                : Usage(inputTokens: estimate.inputTokens, outputTokens: estimate.maxOutputTokens)
            if !read.readable {
                logger.warning(
                    "proxy: reservation \(reservationID): the answer's encoding could not be read; charged the reserved worst case"
                )
            }
        } else if let read {
            usage = read.reading.usage
        }
        guard let settlement = api.engine.settle(reservationID, usage: usage) else {
            logger.error("proxy: reservation \(reservationID) was already settled; its call is not recorded twice")
            return nil
        }
        api.publish(settlement.warnings, call: settlement.reservation.attributes)
        let row = SocketAPI.row(
            of: settlement, usage: usage, status: status, durationMS: durationMS, outcome: outcome,
            estimated: estimated)
        api.writer.append(row, keepOnFailure: true) { [api, logger] result in
            switch result {
            case .success: api.events.publish("SpendObserved", SocketAPI.eventJSON(row), timeMS: row.timeMS)
            case .failure(let error): logger.error("proxy: row \(row.requestID) not yet written: \(error)")
            }
        }
        return row
    }
}

/// What is known of a call in flight — its upstream status, and the usage reader of a billed
/// one — shared by the task that relays it and the one that settles it.
///
/// A compressed answer (`Content-Encoding: gzip` or `deflate`, as providers send to clients
/// that accept it) is forwarded as it is and inflated on the side for the reader. One that
/// cannot be read (another encoding, or corrupt) is marked unreadable: its call is charged its
/// reserved worst case rather than guessed low.
final class FlightRecord: Sendable {
    private struct Reading {
        var reader: UsageReader
        var inflater: Inflater?
        var unreadable = false
    }

    private let reading = Mutex<Reading?>(nil)
    private let upstreamStatus = Mutex<Int?>(nil)

    var status: Int? {
        get { upstreamStatus.withLock { $0 } }
        set { upstreamStatus.withLock { $0 = newValue } }
    }

    func start(_ reader: UsageReader, contentEncoding: String?) {
        let encoding = contentEncoding?.lowercased().trimmingCharacters(in: .whitespaces) ?? "identity"
        var fresh = Reading(reader: reader)
        if encoding != "identity" && !encoding.isEmpty {
            fresh.inflater = Inflater(encoding: encoding)
            fresh.unreadable = fresh.inflater == nil
        }
        reading.withLock { $0 = fresh }
    }

    func feed(_ chunk: ByteBuffer) {
        reading.withLock { state in
            guard var current = state, !current.unreadable else { return }
            defer { state = current }
            guard var inflater = current.inflater else {
                current.reader.feed(chunk.readableBytesView)
                return
            }
            do {
                try inflater.inflate(chunk) { current.reader.feed($0.readableBytesView) }
                current.inflater = inflater
            } catch {
                current.unreadable = true
            }
        }
    }

    /// The usage read, or nil when the answer could not be read (or never began).
    func finish() -> (reading: UsageReading, readable: Bool)? {
        reading.withLock { state in
            guard var current = state else { return nil }
            defer { state = current }
            return (current.reader.finish(), !current.unreadable)
        }
    }
}

/// Inflates a gzip or deflate (zlib) body as it streams. (Unchecked Sendable: zlib's stream
/// state is used only under ``FlightRecord``'s lock.)
struct Inflater: @unchecked Sendable {
    private let decompressor: ZlibDecompressor
    private var window = ByteBufferAllocator().buffer(capacity: 64 * 1024)

    /// Nil for an encoding zlib does not speak (br, zstd).
    init?(encoding: String) {
        let algorithm: ZlibAlgorithm
        switch encoding {
        case "gzip", "x-gzip": algorithm = .gzip
        case "deflate": algorithm = .zlib
        default: return nil
        }
        guard let decompressor = try? ZlibDecompressor(algorithm: algorithm) else { return nil }
        self.decompressor = decompressor
    }

    mutating func inflate(_ chunk: ByteBuffer, into process: (ByteBuffer) -> Void) throws {
        var input = chunk
        try input.decompressStream(with: decompressor, window: &window) { process($0) }
        window.clear()
    }
}

/// True the first time only.
final class Once: Sendable {
    private let done = Mutex(false)

    func first() -> Bool {
        done.withLock { done in
            defer { done = true }
            return !done
        }
    }
}

/// Fires once: a kill switch, the client going away, or the call finishing.
final class StopSignal: Sendable {
    enum Reason: Sendable, Equatable {
        case killed, disconnected, finished
    }

    private let state = Mutex<(reason: Reason?, waiter: CheckedContinuation<Reason, Never>?)>((nil, nil))

    /// Fires `.disconnected` when the client's connection closes.
    init(_ channel: any Channel) {
        channel.closeFuture.whenComplete { [weak self] _ in self?.fire(.disconnected) }
    }

    func fire(_ reason: Reason) {
        let waiter = state.withLock { state -> CheckedContinuation<Reason, Never>? in
            guard state.reason == nil else { return nil }
            state.reason = reason
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: reason)
    }

    func wait() async -> Reason {
        await withCheckedContinuation { continuation in
            let fired = state.withLock { state -> Reason? in
                if let reason = state.reason { return reason }
                state.waiter = continuation
                return nil
            }
            if let fired { continuation.resume(returning: fired) }
        }
    }
}
