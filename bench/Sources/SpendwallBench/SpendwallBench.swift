import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Measures the check+report round trip over the daemon's socket from persistent clients,
/// beside a bare HTTP echo over a Unix socket (the floor) driven by the same client code.
@main
struct SpendwallBench: AsyncParsableCommand {
    @Option(help: "The daemon's socket.") var socket: String
    @Option(help: "Check+report pairs per client.") var pairs = 2000
    @Option(help: "Concurrency levels to run.") var concurrency: [Int] = [1, 16, 64]
    @Option(help: "Kill-switch rounds (0 to skip).") var killRounds = 200

    func run() async throws {
        let echoPath = NSTemporaryDirectory() + "spendwall-bench-echo-\(getpid()).sock"
        let echo = try await EchoServer.start(path: echoPath)
        print("| target | clients | p50 µs | p99 µs | requests/s | pairs/s |")
        print("|---|---|---|---|---|---|")
        for clients in concurrency {
            let floor = try Load.run(path: echoPath, clients: clients, pairs: pairs, daemon: false)
            let daemon = try Load.run(path: socket, clients: clients, pairs: pairs, daemon: true)
            print(
                "| echo (floor) | \(clients) | \(floor.p50) | \(floor.p99) | \(floor.requestsPerSecond) | \(floor.requestsPerSecond / 2) |"
            )
            print(
                "| daemon check | \(clients) | \(daemon.p50) | \(daemon.p99) | \(daemon.requestsPerSecond) | \(daemon.requestsPerSecond / 2) |"
            )
            print(
                "| ratio check/floor p50 | \(clients) | \(String(format: "%.2f", Double(daemon.p50) / Double(max(1, floor.p50)))) | | | |"
            )
        }
        try await echo.close()
        unlink(echoPath)
        if killRounds > 0 {
            let kill = try KillLatency.run(path: socket, rounds: killRounds)
            print("")
            print("| kill switch (\(killRounds) rounds) | p50 µs | p99 µs |")
            print("|---|---|---|")
            print("| POST /v1/kill round trip | \(kill.request.p50) | \(kill.request.p99) |")
            print("| kill sent → a looping checker's first `killed` answer | \(kill.effect.p50) | \(kill.effect.p99) |")
        }
    }
}

/// How fast a kill takes effect: one thread checks in a loop on its own connection while
/// another flips the agent's kill switch; the time from sending the kill to the checker's first
/// `killed` answer is the latency a caller sees.
enum KillLatency {
    final class SeenAt: Sendable {
        let time = Atomic<UInt64>(0)
    }

    struct Figures {
        var request: (p50: Int, p99: Int)
        var effect: (p50: Int, p99: Int)
    }

    static func run(path: String, rounds: Int) throws -> Figures {
        let control = try Connection(path: path)
        let checker = try Connection(path: path)
        var requestTimes: [Int] = []
        var effectTimes: [Int] = []
        let check = #"{"provider":"openai","model":"gpt-4o","agent":"kill-bench","request":{"max_tokens":1}}"#
        for _ in 0..<rounds {
            _ = try control.post("/v1/kill", #"{"agent":"kill-bench","on":false}"#)
            let seen = SeenAt()
            let loop = Thread {
                while seen.time.load(ordering: .acquiring) == 0 {
                    guard let answer = try? checker.post("/v1/check", check) else { return }
                    if answer.contains(#""decision":"killed""#) {
                        seen.time.store(DispatchTime.now().uptimeNanoseconds, ordering: .releasing)
                    }
                }
            }
            loop.start()
            Thread.sleep(forTimeInterval: 0.002)
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try control.post("/v1/kill", #"{"agent":"kill-bench"}"#)
            requestTimes.append(Int((DispatchTime.now().uptimeNanoseconds - t0) / 1000))
            while seen.time.load(ordering: .acquiring) == 0 { usleep(50) }
            effectTimes.append(Int((seen.time.load(ordering: .acquiring) - t0) / 1000))
            while !loop.isFinished { usleep(50) }
        }
        _ = try control.post("/v1/kill", #"{"agent":"kill-bench","on":false}"#)
        requestTimes.sort()
        effectTimes.sort()
        return Figures(
            request: (requestTimes[rounds / 2], requestTimes[rounds * 99 / 100]),
            effect: (effectTimes[rounds / 2], effectTimes[rounds * 99 / 100]))
    }
}

/// A minimal HTTP/1.1 server answering every request with a small JSON body.
enum EchoServer {
    static func start(path: String) async throws -> Channel {
        unlink(path)
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(unixDomainSocketPath: path).get()
    }

    final class EchoHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let body = #"{"decision":"allow","reservation_id":"r_0123456789abcdef0123456789abcdef","reserved_nanousd":1}"#

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(body.utf8.count))
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil
            )
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// Blocking clients on their own threads, each with one persistent connection.
enum Load {
    struct Result {
        var p50: Int
        var p99: Int
        var requestsPerSecond: Int
    }

    static func run(path: String, clients: Int, pairs: Int, daemon: Bool) throws -> Result {
        let collected = Mutex<(latencies: [Int], failures: Int)>(([], 0))
        let group = DispatchGroup()
        let start = DispatchTime.now().uptimeNanoseconds
        for client in 0..<clients {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let connection = try Connection(path: path)
                    var local: [Int] = []
                    local.reserveCapacity(pairs)
                    for i in 0..<pairs {
                        let check =
                            #"{"provider":"openai","model":"gpt-4o","agent":"bench-\#(client)","request":{"max_tokens":16,"messages":[{"role":"user","content":"hello"}]}}"#
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        let answer = try connection.post("/v1/check", check)
                        local.append(Int((DispatchTime.now().uptimeNanoseconds - t0) / 1000))
                        guard
                            let id = answer.range(of: #""reservation_id":""#).map({
                                String(answer[$0.upperBound...].prefix(34))
                            })
                        else {
                            throw BenchError("no reservation in \(answer)")
                        }
                        let report =
                            #"{"reservation_id":"\#(id)","usage":{"input_tokens":\#(i % 50 + 5),"output_tokens":7}}"#
                        _ = try connection.post("/v1/report", report)
                    }
                    collected.withLock { $0.latencies += local }
                } catch {
                    collected.withLock { $0.failures += 1 }
                    FileHandle.standardError.write(Data("client \(client): \(error)\n".utf8))
                }
            }.start()
        }
        group.wait()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        var (latencies, failures) = collected.withLock { $0 }
        guard failures == 0, !latencies.isEmpty else { throw BenchError("\(failures) clients failed") }
        latencies.sort()
        return Result(
            p50: latencies[latencies.count / 2], p99: latencies[latencies.count * 99 / 100],
            requestsPerSecond: Int(Double(latencies.count * 2) / seconds))
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One persistent HTTP/1.1 connection over a Unix socket, blocking. Used by one thread at a time.
final class Connection: @unchecked Sendable {
    let fd: Int32
    var buffer = [UInt8]()

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else { throw BenchError("connect \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    func post(_ path: String, _ body: String) throws -> String {
        let request =
            "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw BenchError("send failed") }
            sent += n
        }
        return try readResponse()
    }

    private func readResponse() throws -> String {
        let separator: [UInt8] = [13, 10, 13, 10]
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let end = find(separator) {
                let head = String(decoding: buffer[0..<end], as: UTF8.self).lowercased()
                guard let range = head.range(of: "content-length: ") else { throw BenchError("no content-length") }
                let length = Int(head[range.upperBound...].prefix { $0.isNumber })!
                let total = end + 4 + length
                if buffer.count >= total {
                    let body = String(decoding: buffer[(end + 4)..<total], as: UTF8.self)
                    buffer.removeFirst(total)
                    return body
                }
            }
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { throw BenchError("connection closed") }
            buffer += chunk[0..<n]
        }
    }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        for i in 0...(buffer.count - pattern.count)
        where buffer[i] == pattern[0] && Array(buffer[i..<(i + pattern.count)]) == pattern {
            return i
        }
        return nil
    }
}
