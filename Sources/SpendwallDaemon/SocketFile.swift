import Foundation
import SpendwallCore

/// Preparing the socket's place: a 0700 directory owned by us, and no live daemon already there.
enum SocketFile {
    static func prepare(_ path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var info = stat()
        guard stat(directory, &info) == 0 else {
            throw SpendwallError(.internalError, "cannot stat \(directory): \(String(cString: strerror(errno)))")
        }
        guard info.st_uid == getuid() else {
            throw SpendwallError(
                .internalError,
                "\(directory) belongs to uid \(info.st_uid), not to you (uid \(getuid())); refusing to put the socket there"
            )
        }
        guard chmod(directory, 0o700) == 0 else {
            throw SpendwallError(
                .internalError, "cannot set mode 0700 on \(directory): \(String(cString: strerror(errno)))")
        }
        guard FileManager.default.fileExists(atPath: path) else { return }
        if isAnswering(path) {
            throw SpendwallError(
                .internalError, "another Spendwall daemon is already listening on \(path) (see `spendwall status`)")
        }
        unlink(path)
    }

    /// The path a listening Unix socket is bound to (for sockets passed by systemd).
    static func boundPath(of fd: Int32) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        let path = withUnsafeBytes(of: address.sun_path) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return path.isEmpty ? nil : path
    }

    /// Makes sure a socket passed in by socket activation is 0600 in a 0700 directory, as when
    /// the daemon binds it itself (systemd's units set the same; this also covers other launchers).
    static func tighten(_ path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        for (target, mode) in [(directory, mode_t(0o700)), (path, mode_t(0o600))] {
            var info = stat()
            guard stat(target, &info) == 0, info.st_uid == getuid() else { continue }
            guard chmod(target, mode) == 0 else {
                throw SpendwallError(
                    .internalError,
                    "cannot set mode \(String(mode, radix: 8)) on \(target): \(String(cString: strerror(errno)))")
            }
        }
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
