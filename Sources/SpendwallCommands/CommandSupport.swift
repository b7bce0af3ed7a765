import Foundation
import SpendwallClient
import SpendwallConfig
import SpendwallCore

/// What every command resolves the same way: paths from the environment and a client.
enum CommandContext {
    static var paths: SpendwallPaths { .resolve() }
    static var client: DaemonClient { DaemonClient(socketPath: paths.socketPath) }

    /// GETs a path and returns the response, turning daemon errors into a failure.
    static func get(_ path: String) async throws -> DaemonClient.Response {
        let response = try await client.get(path)
        guard (200..<300).contains(response.status) else {
            let error = response.error
            throw CLIFailure(
                message: error.map { "\($0.message) (\($0.code))" } ?? "the daemon answered HTTP \(response.status)",
                code: response.status == 400 ? 2 : 1)
        }
        return response
    }

    /// Prints the response body as pretty JSON.
    static func printJSON(_ data: Data) {
        if let object = try? JSONSerialization.jsonObject(with: data),
            let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        {
            print(String(decoding: pretty, as: UTF8.self))
        } else {
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

/// A plain-text table with aligned columns (numbers right-aligned).
struct TextTable {
    var header: [String]
    var rows: [[String]] = []
    var rightAligned: Set<Int> = []

    func render() -> String {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return all.map { row in
            row.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return rightAligned.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }.joined(separator: "\n")
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// Number formatting for tables.
enum Format {
    static func count(_ value: Int64) -> String {
        let digits = Array(String(value.magnitude))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return (value < 0 ? "-" : "") + out
    }

    static func percent(_ fraction: Double) -> String {
        String(format: "%.1f%%", fraction * 100)
    }
}
