import Foundation
import Testing

@testable import SpendwallCore
@testable import SpendwallPeer

@Suite struct PeerTests {
    @Test(
        arguments: [
            (["python3", "reviewer.py", "--x"], "reviewer.py"), (["python3", "-u", "/a/b.py"], "/a/b.py"),
            (["python3", "-m", "aider"], "aider"), (["python3", "-c", "print(1)"], nil),
            (["node", "--require", "x.js", "/usr/lib/claude/cli.js"], "/usr/lib/claude/cli.js"),
            (["deno", "run", "--allow-net", "agent.ts"], "agent.ts"), (["python3"], nil),
        ] as [([String], String?)])
    func scriptFromArguments(argv: [String], script: String?) {
        #expect(ProcessInspector.script(fromArguments: argv) == script)
    }

    @Test func labelsFirstMatchWins() {
        let matcher = LabelMatcher(rules: [
            LabelRule(exe: "*/python3*", script: "*/reviewer.py", app: "reviewer"),
            LabelRule(exe: "*/python*", app: "python"),
        ])
        #expect(matcher.app(exe: "/usr/bin/python3.11", script: "/home/u/reviewer.py") == "reviewer")
        #expect(matcher.app(exe: "/usr/bin/python3.11", script: "/home/u/other.py") == "python")
        #expect(matcher.app(exe: "/usr/bin/ruby", script: "/x/agent.rb") == "agent.rb")
        #expect(matcher.app(exe: "/opt/tool", script: nil) == "tool")
        #expect(matcher.app(exe: nil, script: nil) == "unknown")
    }

    @Test func identifiesThisProcessFromProc() {
        let inspector = ProcessInspector(labels: LabelMatcher(rules: []))
        let me = inspector.identify(pid: getpid(), uid: getuid(), gid: getgid())
        let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        #expect(me.exe == exe)
        #expect(me.pid == getpid())
    }

    @Test func aGoneProcessKeepsPidAndUidAndIsUnknown() {
        let inspector = ProcessInspector(labels: LabelMatcher(rules: []))
        let gone = inspector.identify(pid: 0x3fff_fff0, uid: 1234, gid: 5)
        #expect(gone.pid == 0x3fff_fff0)
        #expect(gone.uid == 1234)
        #expect(gone.app == "unknown")
        #expect(gone.exe == nil)
    }
}

@Suite struct LoopbackPeerTests {
    /// A real loopback TCP connection inside this process: its client end is found, and the
    /// owner is this process.
    @Test func findsTheProcessAtTheClientEndOfALoopbackConnection() throws {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(server); close(client) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(server, pointer, length) == 0 && listen(server, 1) == 0
                    && getsockname(server, pointer, &length) == 0 && connect(client, pointer, length) == 0
            }
        }
        try #require(bound)
        var local = sockaddr_in()
        var localLength = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(client, $0, &localLength) }
        }
        let serverPort = Int(UInt16(bigEndian: address.sin_port))
        let clientPort = Int(UInt16(bigEndian: local.sin_port))
        let owner = try #require(LoopbackPeer().owner(clientPort: clientPort, serverPort: serverPort))
        #expect(owner.pid == getpid())
        #expect(owner.uid == getuid())
        #expect(LoopbackPeer().owner(clientPort: serverPort, serverPort: clientPort + 1) == nil)
    }
}
