/// Keeps a session's raw output for replay: the first `limit` bytes (a replay starts where the
/// program started), plus the last `tailLimit` bytes for finding a resume command printed at exit.
public struct OutputRecorder: Sendable {
    public let limit: Int
    public let tailLimit: Int
    public private(set) var head: [UInt8] = []
    public private(set) var tail: [UInt8] = []
    /// True when output past `limit` was not kept in `head`.
    public private(set) var truncated = false

    public init(limit: Int = 2 << 20, tailLimit: Int = 64 << 10) {
        self.limit = limit
        self.tailLimit = tailLimit
    }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        let room = limit - head.count
        if room > 0 { head += bytes.prefix(room) }
        if bytes.count > room { truncated = true }
        tail += bytes.suffix(tailLimit)
        if tail.count > tailLimit { tail.removeFirst(tail.count - tailLimit) }
    }
}
