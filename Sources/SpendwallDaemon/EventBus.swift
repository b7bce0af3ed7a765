import Foundation
import NIOCore
import NIOHTTP1
import SpendwallCore
import Synchronization

/// Publishes live events to every `GET /v1/events` subscriber as server-sent events.
///
/// Publishing never waits: each event is encoded once and handed to every subscriber's
/// connection. A subscriber that does not read keeps at most ``maxQueuedBytes`` of events
/// queued (plus what the socket buffers); past that its events are dropped and counted, and it is
/// told how many it missed (an `EventsDropped` event) once it reads again. So a stalled reader
/// can neither grow the daemon's memory nor slow anyone else.
final class EventBus: Sendable {
    /// The kinds of event there are.
    static let kinds: Set<String> = [
        "SpendObserved", "CapAlert", "CapBlocked", "KillSwitch", "ApprovalRequested", "ApprovalResolved",
        "ConfigReloaded", "ConfigError", "ReconciliationDrift", "SessionStop",
    ]
    let maxQueuedBytes: Int
    private let state = Mutex(State())

    private struct State {
        var subscribers: [ObjectIdentifier: Subscriber] = [:]
        var nextID: Int64 = 0
    }

    final class Subscriber: Sendable {
        /// Where its events go: a socket API connection's channel, or a stream a loopback
        /// connection (the panel) writes from.
        enum Sink: Sendable {
            case channel(any Channel)
            case stream(AsyncStream<[UInt8]>.Continuation)
        }

        let sink: Sink
        let kinds: Set<String>?
        /// Bytes handed to the connection and not yet written to the socket.
        let queued = Atomic<Int>(0)
        let dropped = Atomic<Int>(0)

        init(sink: Sink, kinds: Set<String>?) {
            self.sink = sink
            self.kinds = kinds
        }
    }

    /// A subscription read as an async sequence of SSE frames (the panel's `/panel/api/events`).
    /// Call ``written(_:)`` with each frame's size once it is on the socket, and ``cancel()``
    /// when the connection ends.
    struct Feed: Sendable {
        let frames: AsyncStream<[UInt8]>
        let subscriber: Subscriber
        let bus: EventBus

        func written(_ bytes: Int) { subscriber.queued.subtract(bytes, ordering: .relaxed) }
        /// Sends the `: keepalive` comment (every 15 s, as `/v1/events` does).
        func keepalive() {
            guard case .stream(let continuation) = subscriber.sink else { return }
            let frame = Array(": keepalive\n\n".utf8)
            subscriber.queued.add(frame.count, ordering: .relaxed)
            continuation.yield(frame)
        }
        func cancel() { bus.unsubscribe(subscriber) }
    }

    private let onDrop: @Sendable () -> Void
    /// Sees every event's JSON as published (the alert dispatcher); must not wait.
    private let observer = Mutex<(@Sendable (String, [UInt8]) -> Void)?>(nil)

    /// Hands every published event's JSON to `observe` too.
    func observe(_ observe: @escaping @Sendable (_ kind: String, _ json: [UInt8]) -> Void) {
        observer.withLock { $0 = observe }
    }

    init(maxQueuedBytes: Int = 4 << 20, onDrop: @escaping @Sendable () -> Void = {}) {
        self.maxQueuedBytes = maxQueuedBytes
        self.onDrop = onDrop
    }

    var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// The most bytes any one subscriber has queued.
    var maxQueuedBytesInUse: Int {
        state.withLock { $0.subscribers.values.map { $0.queued.load(ordering: .relaxed) }.max() ?? 0 }
    }

    /// Total events dropped for slow subscribers that are still connected.
    var droppedCount: Int {
        state.withLock { $0.subscribers.values.reduce(0) { $0 + $1.dropped.load(ordering: .relaxed) } }
    }

    /// Encodes and sends an event to every subscriber that wants its kind.
    func publish(_ kind: String, _ payload: some Encodable, timeMS: Int64? = nil) {
        let (id, targets) = state.withLock { state -> (Int64, [Subscriber]) in
            state.nextID += 1
            return (state.nextID, state.subscribers.values.filter { $0.kinds?.contains(kind) ?? true })
        }
        let observe = observer.withLock { $0 }
        guard !targets.isEmpty || observe != nil else { return }
        let envelope = EventEnvelope(id: id, kind: kind, time_ms: timeMS ?? SystemWallClock().nowMS(), data: payload)
        guard let json = try? JSONEncoder().encode(envelope) else { return }
        observe?(kind, Array(json))
        var frame = "id: \(id)\nevent: \(kind)\ndata: ".utf8.map { $0 }
        frame += json
        frame += [10, 10]
        for subscriber in targets { send(frame, to: subscriber) }
    }

    /// Subscribes a stream of SSE frames, starting with the `: spendwall events` comment.
    func feed(kinds: Set<String>?) -> Feed {
        let (frames, continuation) = AsyncStream<[UInt8]>.makeStream()
        let subscriber = Subscriber(sink: .stream(continuation), kinds: kinds)
        state.withLock { $0.subscribers[ObjectIdentifier(subscriber)] = subscriber }
        let hello = Array(": spendwall events\n\n".utf8)
        subscriber.queued.add(hello.count, ordering: .relaxed)
        continuation.yield(hello)
        return Feed(frames: frames, subscriber: subscriber, bus: self)
    }

    fileprivate func unsubscribe(_ subscriber: Subscriber) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: ObjectIdentifier(subscriber)) }
        if case .stream(let continuation) = subscriber.sink { continuation.finish() }
    }

    /// Starts the event stream on a connection whose request asked for it.
    func subscribe(_ channel: any Channel, kinds: Set<String>?, version: HTTPVersion) {
        let subscriber = Subscriber(sink: .channel(channel), kinds: kinds)
        let id = ObjectIdentifier(subscriber)
        state.withLock { $0.subscribers[id] = subscriber }
        channel.closeFuture.whenComplete { _ in _ = self.state.withLock { $0.subscribers.removeValue(forKey: id) } }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/event-stream")
        headers.add(name: "cache-control", value: "no-cache")
        let head = HTTPResponseHead(version: version, status: .ok, headers: headers)
        let hello = channel.allocator.buffer(string: ": spendwall events\n\n")
        channel.eventLoop.execute {
            // An event stream stays open with nothing to read from the client.
            _ = channel.pipeline.removeHandler(name: "idle-timeout")
            _ = channel.pipeline.removeHandler(name: "idle-closer")
            channel.write(HTTPServerResponsePart.head(head), promise: nil)
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(hello)), promise: nil)
            let heartbeat = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(15), delay: .seconds(15)) {
                _ in
                guard channel.isWritable else { return }
                channel.writeAndFlush(
                    HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(string: ": keepalive\n\n"))),
                    promise: nil)
            }
            channel.closeFuture.whenComplete { _ in heartbeat.cancel() }
        }
    }

    /// Ends every stream (at shutdown), so their connections can close.
    func closeAll() {
        let all = state.withLock { state in
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in all {
            switch subscriber.sink {
            case .channel(let channel):
                channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in
                    channel.close(promise: nil)
                }
            case .stream(let continuation):
                continuation.finish()
            }
        }
    }

    private func send(_ frame: [UInt8], to subscriber: Subscriber) {
        let active: Bool
        switch subscriber.sink {
        case .channel(let channel): active = channel.isActive
        case .stream: active = true
        }
        guard subscriber.queued.load(ordering: .relaxed) + frame.count <= maxQueuedBytes, active else {
            subscriber.dropped.add(1, ordering: .relaxed)
            onDrop()
            return
        }
        var bytes = frame
        let missed = subscriber.dropped.exchange(0, ordering: .relaxed)
        if missed > 0 {
            let notice = #"{"kind":"EventsDropped","data":{"dropped":\#(missed)}}"#
            bytes = Array("event: EventsDropped\ndata: \(notice)\n\n".utf8) + bytes
        }
        let size = bytes.count
        subscriber.queued.add(size, ordering: .relaxed)
        switch subscriber.sink {
        case .channel(let channel):
            let buffer = channel.allocator.buffer(bytes: bytes)
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer))).whenComplete { _ in
                subscriber.queued.subtract(size, ordering: .relaxed)
            }
        case .stream(let continuation):
            if case .terminated = continuation.yield(bytes) { subscriber.queued.subtract(size, ordering: .relaxed) }
        }
    }
}

/// The JSON of one event: `{"id", "kind", "time_ms", "data": {...}}`.
struct EventEnvelope<Payload: Encodable>: Encodable {
    var id: Int64
    var kind: String
    var time_ms: Int64
    var data: Payload
}
