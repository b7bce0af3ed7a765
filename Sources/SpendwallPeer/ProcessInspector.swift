import Foundation
import SpendwallCore

/// Reads who a process is from /proc: its executable and, for interpreters, its script.
public struct ProcessInspector: Sendable {
    public var procRoot: String
    public var labels: LabelMatcher

    public init(labels: LabelMatcher, procRoot: String = "/proc") {
        self.labels = labels
        self.procRoot = procRoot
    }

    /// The identity of a peer from its kernel credentials. When /proc cannot be read (the
    /// process is gone, or hidden), the pid and uid are kept and the app is `unknown`.
    public func identify(pid: Int32, uid: UInt32, gid: UInt32) -> PeerIdentity {
        guard pid > 0, let exe = readLink("\(procRoot)/\(pid)/exe") else {
            return PeerIdentity(pid: pid, uid: uid, gid: gid, app: "unknown")
        }
        var script: String?
        if Self.isInterpreter(exe), let argv = readCmdline(pid) {
            script = Self.script(fromArguments: argv).map { resolve($0, pid: pid) }
        }
        return PeerIdentity(
            pid: pid, uid: uid, gid: gid, exe: exe, script: script, app: labels.app(exe: exe, script: script))
    }

    /// True for the runtimes whose script, not their binary, says what the program is.
    public static func isInterpreter(_ exe: String) -> Bool {
        let name = exe.split(separator: "/").last.map(String.init) ?? exe
        return name.hasPrefix("python") || name.hasPrefix("pypy") || name == "node" || name == "nodejs"
            || name == "bun" || name == "deno" || name.hasPrefix("ruby") || name.hasPrefix("perl")
    }

    /// The script an interpreter runs: the first argument that is not an option (or an
    /// option's value); `-m module` gives the module; `-c`/`-e` code gives nil.
    public static func script(fromArguments argv: [String]) -> String? {
        let takesValue: Set<String> = [
            "-W", "-X", "-r", "--require", "--import", "--loader", "-I", "--experimental-loader",
        ]
        let subcommands: Set<String> = ["run", "x"]
        var index = 1
        while index < argv.count {
            let arg = argv[index]
            if arg == "-m", index + 1 < argv.count { return argv[index + 1] }
            if arg == "-c" || arg == "-e" || arg == "--eval" || arg == "-p" { return nil }
            if takesValue.contains(arg) {
                index += 2
                continue
            }
            if arg.hasPrefix("-") || (index == 1 && subcommands.contains(arg)) {
                index += 1
                continue
            }
            return arg
        }
        return nil
    }

    private func resolve(_ script: String, pid: Int32) -> String {
        guard !script.hasPrefix("/"), script.contains("/") || script.contains("."),
            let cwd = readLink("\(procRoot)/\(pid)/cwd")
        else { return script }
        return (URL(fileURLWithPath: cwd).appendingPathComponent(script).standardizedFileURL.path)
    }

    private func readLink(_ path: String) -> String? { readSymbolicLink(path) }

    private func readCmdline(_ pid: Int32) -> [String]? {
        guard let data = readProcFile("\(procRoot)/\(pid)/cmdline"), !data.isEmpty else {
            return nil
        }
        return data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            .filter { !$0.isEmpty }
    }
}

/// The target of a symbolic link as the kernel gives it (`/proc/PID/exe`, `socket:[INODE]`).
func readSymbolicLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink(path, &buffer, buffer.count - 1)
    guard count > 0 else { return nil }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A whole /proc file. Their size reads as 0 and the kernel hands them out a page per read, so
/// this reads until the end instead of trusting either.
func readProcFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var contents: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return count == 0 ? contents : nil }
        contents.append(contentsOf: buffer[0..<count])
    }
}
