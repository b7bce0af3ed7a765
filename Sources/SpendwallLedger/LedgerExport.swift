import Foundation
import GRDB

/// Streams ledger rows out of the SQLite file, read-only, oldest first, for `spendwall export`.
/// Reading the file directly (WAL allows readers beside the daemon) keeps memory flat however
/// large the ledger is.
public enum LedgerExport {
    public enum Format: String, Sendable, CaseIterable {
        case csv, json
    }

    /// Writes every row at or after `sinceMS` to `write`, in `format`.
    public static func export(
        ledgerPath: String, sinceMS: Int64, format: Format, write: (String) -> Void
    ) throws {
        guard FileManager.default.fileExists(atPath: ledgerPath) else {
            throw ExportError("no ledger at \(ledgerPath) yet: nothing has been recorded")
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        let queue = try DatabaseQueue(path: ledgerPath, configuration: configuration)
        try queue.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT * FROM spend_events WHERE time_ms >= ? ORDER BY time_ms, id", arguments: [sinceMS])
            var first = true
            var columns: [String] = []
            if format == .json { write("[") }
            while let row = try rows.next() {
                if first {
                    columns = row.columnNames.filter { $0 != "id" }
                    if format == .csv { write(columns.map(csvField).joined(separator: ",") + "\n") }
                }
                switch format {
                case .csv:
                    write(columns.map { csvField(text(row[$0] as DatabaseValue)) }.joined(separator: ",") + "\n")
                case .json:
                    write((first ? "\n" : ",\n") + jsonObject(row, columns))
                }
                first = false
            }
            if format == .json { write(first ? "]\n" : "\n]\n") }
        }
    }

    struct ExportError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private static func text(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: return ""
        case .int64(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let v): return v
        case .blob(let v): return v.base64EncodedString()
        }
    }

    /// RFC 4180: quoted when it holds a comma, quote or line break; quotes doubled.
    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    private static func jsonObject(_ row: Row, _ columns: [String]) -> String {
        var object: [String: Any] = [:]
        for column in columns {
            let value: DatabaseValue = row[column]
            switch value.storage {
            case .null: continue
            case .int64(let v): object[column] = v
            case .double(let v): object[column] = v
            case .string(let v):
                if column == "tags", let data = v.data(using: .utf8),
                    let tags = try? JSONSerialization.jsonObject(with: data)
                {
                    object[column] = tags
                } else {
                    object[column] = v
                }
            case .blob(let v): object[column] = v.base64EncodedString()
            }
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
