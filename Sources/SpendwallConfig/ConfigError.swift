/// A configuration file that cannot be used, with the file and (when known) the line.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Hashable {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int? = nil, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// `caps.toml:12: limit_usd must be a number`
    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}
