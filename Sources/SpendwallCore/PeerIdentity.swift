/// The process on the other end of a connection, as the kernel reports it.
public struct PeerIdentity: Sendable, Hashable {
    public var pid: Int32?
    public var uid: UInt32?
    public var gid: UInt32?
    /// `/proc/PID/exe`, when readable.
    public var exe: String?
    /// For interpreters, the script being run (from `/proc/PID/cmdline`).
    public var script: String?
    /// The friendly name from labels.toml, or a fallback; `unknown` when /proc was unreadable.
    public var app: String

    public init(
        pid: Int32? = nil, uid: UInt32? = nil, gid: UInt32? = nil,
        exe: String? = nil, script: String? = nil, app: String = "unknown"
    ) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.exe = exe
        self.script = script
        self.app = app
    }

    /// A peer whose identity could not be read at all.
    public static let unknown = PeerIdentity()
}
