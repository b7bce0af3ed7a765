import SpendwallCore

/// labels.toml: friendly app names for executables and scripts.
public enum LabelsFile {
    /// The rules seeded for the common agent CLIs and runtimes, used when labels.toml is absent
    /// and written by `spendwall init`.
    public static let defaults: [LabelRule] = [
        LabelRule(exe: "*/claude", app: "Claude Code"),
        LabelRule(exe: "*/node*", script: "*/claude*", app: "Claude Code"),
        LabelRule(exe: "*/codex*", app: "Codex"),
        LabelRule(exe: "*/node*", script: "*/codex*", app: "Codex"),
        LabelRule(exe: "*/cursor*", app: "Cursor"),
        LabelRule(exe: "*/python*", script: "*/aider", app: "Aider"),
        LabelRule(exe: "*/gemini", app: "Gemini CLI"),
        LabelRule(exe: "*/node*", script: "*/gemini*", app: "Gemini CLI"),
        LabelRule(exe: "*/node*", app: "node"),
        LabelRule(exe: "*/python*", app: "python"),
    ]

    /// Loads labels.toml; when it does not exist, the seeded defaults apply.
    public static func load(paths: SpendwallPaths) throws(ConfigError) -> [LabelRule] {
        guard let text = try ConfigFiles.read(paths.configFile("labels.toml")) else { return defaults }
        return try parse(text)
    }

    public static func parse(_ text: String, file: String = "labels.toml") throws(ConfigError) -> [LabelRule] {
        let source = try TOMLSource(file: file, text: text)
        for key in source.table.keys where key != "label" {
            throw source.error(
                "unknown key \(key): labels are written as [[label]] tables", line: source.line(ofKey: key))
        }
        guard let array = source.table["label"]?.array else { return [] }
        var rules: [LabelRule] = []
        for (index, element) in array.enumerated() {
            func fail(_ message: String, key: String? = nil) -> ConfigError {
                source.error(message, line: source.line(ofArrayTable: "label", index: index, key: key))
            }
            guard let table = element.table else { throw fail("each label must be a table") }
            for key in table.keys where !["exe", "script", "app"].contains(key) {
                throw fail("unknown key \(key) (known: exe, script, app)", key: key)
            }
            guard let app = table["app"]?.string, !app.isEmpty else {
                throw fail("every label needs app = \"...\"", key: "app")
            }
            let exe = table["exe"]?.string
            let script = table["script"]?.string
            if table["exe"] != nil && exe == nil { throw fail("exe must be a glob string", key: "exe") }
            if table["script"] != nil && script == nil { throw fail("script must be a glob string", key: "script") }
            guard exe != nil || script != nil else { throw fail("label \"\(app)\" needs exe and/or script") }
            rules.append(LabelRule(exe: exe, script: script, app: app))
        }
        return rules
    }
}
