import Foundation
import Testing

@testable import SpendwallRun

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ResumeCommandTests {
    @Test(
        arguments: [
            (
                "Resume this session with:\r\n\u{1B}[1mclaude --resume 4f1c2d3e-aa\u{1B}[0m\r\n",
                "claude --resume 4f1c2d3e-aa"
            ),
            ("To continue this session, run codex resume 0199a2b3-c4d5-7e6f\n", "codex resume 0199a2b3-c4d5-7e6f"),
            ("claude -r abc_123\n", "claude -r abc_123"),
            ("old: claude --resume first\nnew: claude --resume second\n", "claude --resume second"),
            ("\u{1B}]0;title claude --resume inside-title\u{07}nothing here\n", nil),
            ("claude --resume \n", nil),
        ] as [(String, String?)])
    func findsTheLastResumeCommand(output: String, expected: String?) {
        #expect(ResumeCommand.find(in: Array(output.utf8)) == expected)
    }
}

@Suite struct OutputRecorderTests {
    @Test func keepsTheHeadUpToItsLimitAndAlwaysTheTail() {
        var recorder = OutputRecorder(limit: 10, tailLimit: 4)
        recorder.append(Array("0123456".utf8))
        #expect(!recorder.truncated)
        recorder.append(Array("789abc".utf8))
        #expect(String(decoding: recorder.head, as: UTF8.self) == "0123456789")
        #expect(String(decoding: recorder.tail, as: UTF8.self) == "9abc")
        #expect(recorder.truncated)
    }
}

@Suite(.timeLimit(.minutes(1))) struct ChildLauncherTests {
    @Test func aProgramInAPseudoTerminalHasItAsItsControllingTerminal() throws {
        let wake = try WakePipe()
        wake.catchSignals([SIGCHLD])
        defer { wake.restore() }
        let child = try ChildLauncher.launch(
            executable: "/bin/sh", arguments: ["sh", "-c", "test -t 0 && test -t 1 && tty && exit 7"],
            environment: ["PATH=/usr/bin:/bin"], terminal: true, settings: nil, size: nil)
        let supervisor = SessionSupervisor(child: child, terminal: nil, graceMS: 1000, wake: wake)
        let exit = supervisor.run()
        #expect(exit.exitCode == 7)
        #expect(String(decoding: exit.output.head, as: UTF8.self).contains("/dev/pts/"))
        #expect(exit.stopReason == .exited)
    }

    @Test func aStopEscalatesToSIGKILLForAProgramThatTrapsTheOthers() async throws {
        let wake = try WakePipe()
        wake.catchSignals([SIGCHLD])
        defer { wake.restore() }
        let marker = NSTemporaryDirectory() + "/spendwall-traps-\(getpid())"
        defer { unlink(marker) }
        let child = try ChildLauncher.launch(
            executable: "/bin/sh",
            arguments: [
                "sh", "-c", "trap 'echo INT' INT; trap 'echo TERM' TERM; touch \(marker); while :; do sleep 0.05; done",
            ],
            environment: ["PATH=/usr/bin:/bin"], terminal: false, settings: nil, size: nil)
        let supervisor = SessionSupervisor(child: child, terminal: nil, graceMS: 300, wake: wake)
        let running = Task.detached { supervisor.run() }
        // Stop only once the traps are set, so it is the traps that are tested.
        while access(marker, F_OK) != 0 { try await Task.sleep(for: .milliseconds(10)) }
        supervisor.requestStop(.budgetExceeded)
        let exit = await running.value
        #expect(exit.signal == SIGKILL)
        #expect(exit.exitCode == nil)
        #expect(exit.stopReason == .budgetExceeded)
        #expect(exit.shellStatus == 137)
        let printed = String(decoding: exit.output.head, as: UTF8.self)
        #expect(printed.contains("INT") && printed.contains("TERM"))
    }

    @Test func anUnknownProgramIsNotFound() {
        #expect(ChildLauncher.resolve("no-such-program-xyz", path: "/usr/bin:/bin") == nil)
        #expect(ChildLauncher.resolve("sh", path: "/usr/bin:/bin") != nil)
    }
}
