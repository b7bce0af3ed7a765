import Foundation
import SpendwallCore

/// Preparing the socket's place: a 0700 directory owned by us, and no live daemon already there.
enum SocketFile {
    static func prepare(_ path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var info = stat()
        guard stat(directory, &info) == 0 else {
            throw SpendwallError(.internalError, "cannot stat \(directory): \(String(cString: strerror(errno)))")
        }
        guard info.st_uid == getuid() else {
            throw SpendwallError(.internalError, "\(directory) belongs to uid \(info.st_uid), not to you (uid \(getuid())); refusing to put the socket there")
        }
        guard chmod(directory, 0o700) == 0 else {
            throw SpendwallError(.internalError, "cannot set mode 0700 on \(directory): \(String(cString: strerror(errno)))")
        }
        guard FileManager.default.fileExists(atPath: path) else { return }
        if isAnswering(path) {
            throw SpendwallError(.internalError, "another Spendwall daemon is already listening on \(path) (see `spendwall status`)")
        }
        unlink(path)
    }

    /// True when something accepts connections on the socket.
    static func isAnswering(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}
