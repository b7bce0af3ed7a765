/// A labels.toml entry: globs on the executable and (for interpreters) the script, and the
/// friendly app name they map to. First match wins.
public struct LabelRule: Sendable, Hashable {
    public var exe: String?
    public var script: String?
    public var app: String

    public init(exe: String? = nil, script: String? = nil, app: String) {
        self.exe = exe
        self.script = script
        self.app = app
    }
}
