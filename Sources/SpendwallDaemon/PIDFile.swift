import Foundation

/// The PID file beside the socket, so `spendwall stop` and `status` find the daemon however
/// it was started.
public enum PIDFile {
    static func write(_ path: String) {
        try? "\(getpid())\n".write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func remove(_ path: String) {
        if read(path) == getpid() { unlink(path) }
    }

    /// The pid in the file, if any.
    public static func read(_ path: String) -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap {
            Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
