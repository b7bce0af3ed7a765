import TOMLKit

/// A parsed TOML file that remembers its text, so validation errors can name a line.
struct TOMLSource {
    let file: String
    let table: TOMLTable
    private let lines: [Substring]

    /// Parses `text`; a syntax error becomes a ``ConfigError`` with the parser's line.
    init(file: String, text: String) throws(ConfigError) {
        self.file = file
        self.lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(file: file, line: error.source.begin.line, "syntax error: \(error.description)")
        } catch {
            throw ConfigError(file: file, "cannot parse: \(error)")
        }
    }

    /// The line of the `index`th `[[name]]` header (1-based lines), and of `key` inside it.
    func line(ofArrayTable name: String, index: Int, key: String? = nil) -> Int? {
        var seen = -1
        for (number, line) in lines.enumerated() {
            let trimmed = line.trimmingCharacters()
            if trimmed.hasPrefix("[[") && trimmed.replacingSpaces().hasPrefix("[[\(name)]]") {
                seen += 1
                if seen == index {
                    guard let key else { return number + 1 }
                    for (offset, inner) in lines[(number + 1)...].enumerated() {
                        let t = inner.trimmingCharacters()
                        if t.hasPrefix("[") { break }
                        if t.hasPrefix(key + " ") || t.hasPrefix(key + "=") { return number + offset + 2 }
                    }
                    return number + 1
                }
            }
        }
        return nil
    }

    /// The line of a `[name]` table header written any of the ways in `headers`, or of `key`
    /// inside that table when it is written there.
    func line(ofTable headers: [String], key: String? = nil) -> Int? {
        for (number, line) in lines.enumerated() {
            let header = line.trimmingCharacters().replacingSpaces()
            guard headers.contains(where: { header.hasPrefix($0) }) else { continue }
            guard let key else { return number + 1 }
            for (offset, inner) in lines[(number + 1)...].enumerated() {
                let t = inner.trimmingCharacters()
                if t.hasPrefix("[") { break }
                if t.hasPrefix(key + " ") || t.hasPrefix(key + "=") { return number + offset + 2 }
            }
            return number + 1
        }
        return nil
    }

    /// The line where `key = ` is first written at the start of a line.
    func line(ofKey key: String) -> Int? {
        for (number, line) in lines.enumerated() {
            let t = line.trimmingCharacters()
            if t.hasPrefix(key + " ") || t.hasPrefix(key + "=") { return number + 1 }
        }
        return nil
    }

    func error(_ message: String, line: Int?) -> ConfigError {
        ConfigError(file: file, line: line, message)
    }
}

extension Substring {
    fileprivate func trimmingCharacters() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        return s
    }

    fileprivate func replacingSpaces() -> String { String(filter { $0 != " " && $0 != "\t" }) }
}

extension TOMLValueConvertible {
    /// A number written as an integer or a float.
    var number: Double? { double ?? int.map(Double.init) }
}
