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
            let pid = process(holding: inode, uid: uid)
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

    /// The process with `inode` among its open files, newest first (a client that just
    /// connected is usually a recent process). Only processes of the socket's owner are looked
    /// at, read with readdir/readlink: this runs once per connection, before its first request.
    func process(holding inode: UInt64, uid: UInt32? = nil) -> Int32? {
        let target = "socket:[\(inode)]"
        for pid in Self.entries(of: procRoot).compactMap(Int32.init).sorted(by: >) {
            if let uid {
                var info = stat()
                guard stat("\(procRoot)/\(pid)", &info) == 0, info.st_uid == uid else { continue }
            }
            let fdDirectory = "\(procRoot)/\(pid)/fd"
            for fd in Self.entries(of: fdDirectory) where readSymbolicLink("\(fdDirectory)/\(fd)") == target {
                return pid
            }
        }
        return nil
    }

    /// The names in a directory (without `.` and `..`); empty when it cannot be read.
    static func entries(of directory: String) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
