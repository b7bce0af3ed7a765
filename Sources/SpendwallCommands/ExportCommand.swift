import ArgumentParser
import Foundation
import SpendwallCore
import SpendwallLedger

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write ledger rows (oldest first) as CSV or JSON to stdout; works with the daemon running or not.")

    @Option(help: "csv or json.") var format: LedgerExport.Format = .csv
    @Option(help: "How far back: 1h, 1d, 7d, 30d (or any <n>s|m|h|d); all rows when absent.") var since: String?

    func validate() throws {
        if let since, Duration.milliseconds(parsing: since) == nil {
            throw ValidationError("--since must be a duration like 1h, 1d, 7d or 30d, not \"\(since)\"")
        }
    }

    func run() throws {
        let sinceMS = since.flatMap(Duration.milliseconds(parsing:)).map { SystemWallClock().nowMS() - $0 } ?? 0
        let output = FileHandle.standardOutput
        var pending = ""
        do {
            try LedgerExport.export(ledgerPath: CommandContext.paths.ledgerPath, sinceMS: sinceMS, format: format) {
                text in
                pending += text
                if pending.utf8.count >= 64 * 1024 {
                    output.write(Data(pending.utf8))
                    pending = ""
                }
            }
        } catch {
            throw CLIFailure.failure("cannot export the ledger: \(error)")
        }
        output.write(Data(pending.utf8))
    }
}

extension LedgerExport.Format: ExpressibleByArgument {}
