import Crypto
import Foundation
import SpendwallCore
import Synchronization

/// Replaces sensitive tag values by a keyed hash before anything is written or published, so
/// rows still group by the value without storing it.
///
/// The key is 32 random bytes in `redact.key` (0600) in the data directory, made on first use:
/// the same value always hashes the same on this machine, and the hash cannot be reversed by
/// trying likely values without the key.
final class TagRedactor: Sendable {
    let keys: Set<String>
    /// Matched under a lock: a compiled `Regex` is not safe to share between threads.
    private let valuePattern: Mutex<Regex<AnyRegexOutput>?>
    private let key: Data?

    init(keys: [String], valuePattern: String?, keyFile: String) throws {
        self.keys = Set(keys)
        self.valuePattern = Mutex(try valuePattern.map { try Regex($0) })
        guard !keys.isEmpty || valuePattern != nil else {
            key = nil
            return
        }
        key = try Self.loadOrCreateKey(at: keyFile)
    }

    /// True when nothing is redacted.
    var isEmpty: Bool { key == nil }

    func redact(_ tags: [String: String]) -> [String: String] {
        guard let key, !tags.isEmpty else { return tags }
        var result = tags
        let symmetricKey = SymmetricKey(data: key)
        for (name, value) in tags where keys.contains(name) || matches(value) {
            guard !value.hasPrefix("redacted:") else { continue }
            let mac = HMAC<SHA256>.authenticationCode(for: Data(value.utf8), using: symmetricKey)
            result[name] = "redacted:" + mac.prefix(12).map { String(format: "%02x", $0) }.joined()
        }
        return result
    }

    private func matches(_ value: String) -> Bool {
        valuePattern.withLock { pattern in pattern.map { value.contains($0) } ?? false }
    }

    private static func loadOrCreateKey(at path: String) throws -> Data {
        if let data = FileManager.default.contents(atPath: path), data.count == 32 { return data }
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = generator.next() }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            // Another start made it first, or it is unreadable: use what is there or fail clearly.
            if let data = FileManager.default.contents(atPath: path), data.count == 32 { return data }
            throw SpendwallError(
                .internalError, "cannot create the redaction key \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw SpendwallError(.internalError, "cannot write the redaction key \(path)")
        }
        return Data(bytes)
    }
}
