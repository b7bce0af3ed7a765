import Foundation
import Logging
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// Reloads the configuration when one of its files is saved: the config directory is watched
/// with inotify, and a burst of changes (editors write, rename and chmod) is debounced into one
/// reload. A bad file keeps the running configuration (see ``DaemonState/reload()``).
struct ConfigWatcher: Service {
    static let reloadable: Set<String> = [
        "spendwall.toml", "caps.toml", "labels.toml", "pricing.toml", "alerts.toml",
    ]
    let state: DaemonState
    var debounce: Duration = .milliseconds(150)
    var poll: Duration = .milliseconds(50)

    func run() async throws {
        let directory = state.configuration.paths.configDirectory
        try? FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM)
        guard fd >= 0, inotify_add_watch(fd, directory, mask) >= 0 else {
            state.logger.warning(
                "cannot watch \(directory) for changes (\(String(cString: strerror(errno)))); reload with `spendwall reload` or SIGHUP"
            )
            if fd >= 0 { close(fd) }
            // Returning would stop the whole service group.
            try? await gracefulShutdown()
            return
        }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var due: ContinuousClock.Instant?
        while !Task.isCancelledOrShuttingDown {
            for name in Self.changedFiles(fd, into: &buffer) where Self.reloadable.contains(name) {
                due = .now + debounce
            }
            if let deadline = due, ContinuousClock.now >= deadline {
                due = nil
                _ = try? await state.reload()
            }
            try? await Task.sleep(for: poll)
        }
    }

    /// The file names of every inotify event waiting on `fd`.
    static func changedFiles(_ fd: Int32, into buffer: inout [UInt8]) -> [String] {
        var names: [String] = []
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return names }
            var offset = 0
            let header = MemoryLayout<inotify_event>.size
            while offset + header <= count {
                let length = buffer.withUnsafeBytes { raw in
                    Int(raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self).len)
                }
                let start = offset + header
                let end = min(start + length, count)
                let name = buffer[start..<end].prefix { $0 != 0 }
                if !name.isEmpty { names.append(String(decoding: name, as: UTF8.self)) }
                offset = end
            }
        }
    }
}

extension Task where Success == Never, Failure == Never {
    /// True once the task is cancelled or the service group is shutting down.
    static var isCancelledOrShuttingDown: Bool { isCancelled || isShuttingDownGracefully }
}
