import Foundation

/// Reading configuration files.
public enum ConfigFiles {
    /// The file's text, or nil when it does not exist.
    static func read(_ path: String) throws(ConfigError) -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: (path as NSString).lastPathComponent, "cannot read \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: (path as NSString).lastPathComponent, "is not UTF-8 text")
        }
        return text
    }
}
