import Foundation

/// Finds the process at the other end of a loopback TCP connection, from /proc: the proxy's
/// counterpart of SO_PEERCRED, which TCP does not have.
///
/// The client's socket is the row of /proc/net/tcp (or tcp6) whose local port is the client's
/// port and whose remote port is the listener's; its inode is then looked for among the open
/// files of the processes the daemon can see (its own user's). Done once per connection.
public struct LoopbackPeer: Sendable {
    public var procRoot: String

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
    }

    /// The pid and uid owning the client end of the connection from `clientPort` to
    /// `serverPort`, or nil when it cannot be found (the process is gone, or not visible).
    public func owner(clientPort: Int, serverPort: Int) -> (pid: Int32, uid: UInt32)? {
        guard let (inode, uid) = socket(clientPort: clientPort, serverPort: serverPort),
            let pid = process(holding: inode)
        else { return nil }
        return (pid, uid)
    }

    /// The inode and uid of the client's socket, from the kernel's TCP tables.
    func socket(clientPort: Int, serverPort: Int) -> (inode: UInt64, uid: UInt32)? {
        for table in ["net/tcp", "net/tcp6"] {
            guard let data = readProcFile("\(procRoot)/\(table)") else { continue }
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 9, Self.port(fields[1]) == clientPort, Self.port(fields[2]) == serverPort,
                    let uid = UInt32(fields[7]), let inode = UInt64(fields[9]), inode != 0
                else { continue }
                return (inode, uid)
            }
        }
        return nil
    }

    /// The port of an `ADDRESS:PORT` field (the port in hex).
    static func port(_ field: Substring) -> Int? {
        guard let colon = field.lastIndex(of: ":") else { return nil }
        return Int(field[field.index(after: colon)...], radix: 16)
    }

    /// The first process with `inode` among its open files.
    func process(holding inode: UInt64) -> Int32? {
        let target = "socket:[\(inode)]"
        let me = getuid()
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: procRoot) else { return nil }
        for entry in entries {
            guard let pid = Int32(entry) else { continue }
            var info = stat()
            guard stat("\(procRoot)/\(entry)", &info) == 0, info.st_uid == me || me == 0 else { continue }
            let fdDirectory = "\(procRoot)/\(entry)/fd"
            guard let fds = try? FileManager.default.contentsOfDirectory(atPath: fdDirectory) else { continue }
            for fd in fds where readSymbolicLink("\(fdDirectory)/\(fd)") == target { return pid }
        }
        return nil
    }
}
