import SpendwallCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Maps an executable (and script) to an app name with labels.toml's rules: shell globs,
/// first match wins.
public struct LabelMatcher: Sendable {
    public var rules: [LabelRule]

    public init(rules: [LabelRule]) {
        self.rules = rules
    }

    /// The app for a process: the first matching rule's name, else the script's or the
    /// executable's file name, else `unknown`.
    public func app(exe: String?, script: String?) -> String {
        for rule in rules {
            if let pattern = rule.exe {
                guard let exe, Self.glob(pattern, exe) else { continue }
            }
            if let pattern = rule.script {
                guard let script, Self.glob(pattern, script) else { continue }
            }
            return rule.app
        }
        if let script { return basename(script) }
        if let exe { return basename(exe) }
        return "unknown"
    }

    /// Shell-glob match (`*`, `?`, `[...]`); `*` also matches `/`.
    public static func glob(_ pattern: String, _ value: String) -> Bool {
        fnmatch(pattern, value, 0) == 0
    }

    private func basename(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}
