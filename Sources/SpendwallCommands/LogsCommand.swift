import ArgumentParser
import Foundation
import SpendwallCore
import Synchronization

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print the latest ledger rows, oldest first; --tail follows new ones as they land.")

    @Option(name: .short, help: "How many recent rows to print first.") var n = 20
    @Flag(help: "Keep printing new rows as they are recorded (Ctrl+C to stop).") var tail = false
    @Flag(help: "Print one JSON object per line.") var json = false

    func validate() throws {
        guard (0...1000).contains(n) else { throw ValidationError("-n must be from 0 to 1000") }
    }

    func run() async throws {
        let printed = PrintedRows()
        guard tail else { return try await printRecent(skipping: printed) }
        let json = self.json
        try await CommandContext.client.events(
            kinds: ["SpendObserved"], onOpen: { try await printRecent(skipping: printed) }
        ) { event in
            guard let envelope = try? JSONSerialization.jsonObject(with: event.json) as? [String: Any],
                let row = envelope["data"] as? [String: Any]
            else { return true }
            let id = row["request_id"] as? String ?? ""
            guard printed.insert(id) else { return true }
            Self.emit(row, json: json)
            return true
        }
    }

    /// Prints the last `n` rows (subscribing first, so nothing between the two is missed).
    private func printRecent(skipping printed: PrintedRows) async throws {
        guard n > 0 else { return }
        let response = try await CommandContext.get("/v1/ledger?limit=\(n)")
        let rows = (response.json?["rows"] as? [[String: Any]] ?? []).reversed()
        if rows.isEmpty && !tail && !json { print("No calls recorded yet.") }
        for row in rows {
            _ = printed.insert(row["request_id"] as? String ?? "")
            Self.emit(row, json: json)
        }
    }

    private static func emit(_ row: [String: Any], json: Bool) {
        var text = line(row)
        if json, let data = try? JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]) {
            text = String(decoding: data, as: UTF8.self)
        }
        // Unbuffered, so a pipe sees each row as it lands.
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// `2026-11-23T10:00:00Z  app  agent  model  in 1,200 out 300  $0.0123  ok`
    static func line(_ row: [String: Any]) -> String {
        let time =
            (row["time_ms"] as? Int64).map {
                ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double($0) / 1000))
            } ?? "?"
        let cost = Money.format(row["cost_nanousd"] as? Int64 ?? 0)
        let tokens =
            "in \(Format.count(row["input_tokens"] as? Int64 ?? 0)) out \(Format.count(row["output_tokens"] as? Int64 ?? 0))"
        return [
            time, row["app"] as? String ?? "?", row["agent"] as? String ?? "-", row["model"] as? String ?? "?", tokens,
            cost,
            row["outcome"] as? String ?? "?",
        ].joined(separator: "  ")
    }
}

/// Request ids already printed, so a row is printed once even when it arrives both ways.
final class PrintedRows: Sendable {
    private let ids = Mutex<Set<String>>([])

    func insert(_ id: String) -> Bool { ids.withLock { $0.insert(id).inserted } }
}
