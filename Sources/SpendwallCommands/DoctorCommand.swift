import ArgumentParser
import Foundation
import SpendwallConfig
import SpendwallCore
import SpendwallTokenizer

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor", abstract: "Print a Markdown health report; exit 1 when anything is unhealthy.")

    /// `/v1/team` as doctor lines: the database, the leases and how far behind shipping is.
    static func teamSection(_ json: [String: Any], problems: inout [String]) -> [String] {
        func int(_ value: Any?) -> Int64 { (value as? Int64) ?? (value as? Int).map(Int64.init) ?? 0 }
        var lines = ["## Team"]
        let online = json["online"] as? Bool == true
        lines.append(
            "- machine `\(json["machine"] ?? "?")`, database \(json["database"] ?? "?"): "
                + (online ? "reachable" : "**unreachable**") + ", offline mode \(json["offline"] ?? "?")")
        if !online {
            problems.append(
                "the team database cannot be reached (\(json["lease_error"] ?? "no answer yet")): team caps decide from the leases held, rows queue locally"
            )
        }
        for lease in json["leases"] as? [[String: Any]] ?? [] {
            lines.append(
                "- lease \(lease["cap"] ?? "?") [\(lease["key"] ?? "?")]: \(Money.format(int(lease["available_nanousd"]))) available of \(Money.format(int(lease["granted_nanousd"]) - int(lease["returned_nanousd"]))) held; used \(Money.format(int(lease["used_nanousd"]))) (team limit \(Money.format(int(lease["limit_nanousd"]))))"
            )
        }
        lines.append("- lease round trips: \(int(json["lease_round_trips"]))")
        if let shipping = json["shipping"] as? [String: Any] {
            let behind = int(shipping["behind_rows"])
            let seconds = int(shipping["behind_ms"]) / 1000
            lines.append(
                "- shipping: "
                    + (behind == 0
                        ? "up to date (row \(int(shipping["shipped_id"])))"
                        : "**\(behind) rows behind**, the oldest \(seconds)s old"
                            + ((shipping["error"] as? String).map { " (last error: \($0))" } ?? "")))
            if behind > 0 && seconds >= 60 {
                problems.append(
                    "team shipping is \(behind) rows and \(seconds)s behind; they ship when the database answers")
            }
        }
        return lines
    }

    func run() async throws {
        let paths = CommandContext.paths
        var problems: [String] = []
        var lines = ["# Spendwall doctor", ""]

        lines.append("## Daemon")
        if let health = try? await CommandContext.client.get("/v1/health"), health.status == 200, let json = health.json
        {
            lines.append(
                "- running: pid \(json["pid"] ?? "?"), version \(json["version"] ?? "?"), fail mode \(json["fail_mode"] ?? "?")"
            )
            for (name, value) in (json["components"] as? [String: [String: Any]] ?? [:]).sorted(by: { $0.key < $1.key })
            {
                let ok = value["ok"] as? Bool == true
                lines.append("- \(name): \(ok ? "ok" : "FAILING") (\(value["latency_us"] ?? "?") µs)")
                if !ok { problems.append("\(name) is failing: \(value["error"] ?? "")") }
            }
            if let pending = try? await CommandContext.client.get("/v1/approvals?status=pending"),
                let approvals = pending.json?["approvals"] as? [[String: Any]]
            {
                lines.append(
                    "- pending approvals: "
                        + (approvals.isEmpty
                            ? "none"
                            : "\(approvals.count) (`spendwall approvals ls`; approve or deny by id): "
                                + approvals.compactMap { $0["id"] as? String }.joined(separator: ", ")))
            }
            if let loopback = json["loopback"] as? String {
                lines.append("- loopback listener: http://\(loopback) (metrics at /metrics)")
            }
            if let error = json["config_error"] as? String {
                lines.append("- **kept the previous configuration**: the last reload failed: \(error)")
                problems.append("the running daemon rejected a configuration change: \(error)")
            }
            let kills = json["kill_switches"] as? [[String: Any]] ?? []
            lines.append(
                "- kill switches on: "
                    + (kills.isEmpty
                        ? "none"
                        : kills.map { k in (k["value"] as? String).map { "\(k["kind"] ?? "") \($0)" } ?? "global" }
                            .joined(separator: ", ")))
        } else {
            lines.append("- **not running** on \(paths.socketPath) — start it with `spendwall start` or `make run`")
            problems.append("the daemon is not running")
        }
        lines.append("")

        lines.append("## Socket")
        lines.append("- path: `\(paths.socketPath)`")
        for (label, path, wanted) in [("socket", paths.socketPath, 0o600), ("directory", paths.socketDirectory, 0o700)]
        {
            var info = stat()
            if stat(path, &info) == 0 {
                let mode = Int(info.st_mode) & 0o777
                let ok = mode == wanted && info.st_uid == getuid()
                lines.append(
                    "- \(label) mode: \(String(mode, radix: 8)) (want \(String(wanted, radix: 8)), owner uid \(info.st_uid)) \(ok ? "ok" : "**WRONG**")"
                )
                if !ok {
                    problems.append("\(label) \(path) has mode \(String(mode, radix: 8)) or owner \(info.st_uid)")
                }
            } else {
                lines.append("- \(label): missing")
            }
        }
        if let pid = PIDFileReader.read(paths.pidFile) { lines.append("- PID file: \(paths.pidFile) (pid \(pid))") }
        lines.append("")

        lines.append("## systemd")
        lines.append("- " + SystemdProbe.unitState())
        lines.append("")

        lines.append("## Configuration (`\(paths.configDirectory)`)")
        let checks: [(String, () throws -> Void)] = [
            ("spendwall.toml", { _ = try SpendwallConfiguration.load(paths: paths) }),
            ("caps.toml", { _ = try CapsFile.load(paths: paths) }),
            ("labels.toml", { _ = try LabelsFile.load(paths: paths) }),
            ("pricing.toml", { _ = try PricingFile.load(paths: paths) }),
            ("keys.toml", { _ = try ProviderKeys.load(paths: paths) }),
        ]
        for (file, check) in checks {
            let present = FileManager.default.fileExists(atPath: paths.configFile(file))
            do {
                try check()
                lines.append("- \(file): \(present ? "ok" : "absent (defaults apply)")")
            } catch {
                lines.append("- \(file): **\(error)**")
                problems.append("\(error)")
            }
        }
        lines.append("")

        lines.append("## Ledger")
        let ledger = paths.ledgerPath
        if let attributes = try? FileManager.default.attributesOfItem(atPath: ledger) {
            let size = (attributes[.size] as? Int64) ?? 0
            lines.append("- file: `\(ledger)` (\(Format.count(size / 1024)) KiB)")
        } else {
            lines.append("- file: `\(ledger)` (not created yet)")
        }
        if let recent = try? await CommandContext.client.get("/v1/ledger?limit=1000"),
            let rows = recent.json?["rows"] as? [[String: Any]]
        {
            if let last = rows.first?["time_ms"] as? Int64 ?? (rows.first?["time_ms"] as? Int).map(Int64.init) {
                let date = Date(timeIntervalSince1970: Double(last) / 1000)
                lines.append("- last write: \(ISO8601DateFormatter().string(from: date))")
            } else {
                lines.append("- last write: none yet")
            }
            let unpriced = Set(rows.filter { ($0["priced"] as? Bool) == false }.compactMap { $0["model"] as? String })
            lines.append(
                "- unpriced models in the last 1,000 rows: \(unpriced.isEmpty ? "none" : unpriced.sorted().joined(separator: ", ") + " (add them to pricing.toml)")"
            )
        }
        lines.append("")

        lines.append("## Tokenizers (`\(TokenizerCommand.store.directory)`)")
        for status in EncodingName.allCases.map({ TokenizerCommand.store.status($0) }) {
            lines.append(
                "- \(status.name): "
                    + (status.path.map { "ok (`\($0)`)" }
                        ?? "missing: counts are estimated, not exact (`spendwall tokenizer install`)"))
            // Not a failure: tiktoken's caches are not Spendwall's to fix, and estimates still work.
            for problem in status.problems { lines.append("  - warning: \(problem)") }
        }
        lines.append("")
        if let team = try? await CommandContext.client.get("/v1/team"), team.status == 200, let json = team.json,
            json["enabled"] as? Bool == true
        {
            lines.append(contentsOf: Self.teamSection(json, problems: &problems))
            lines.append("")
        }

        lines.append(problems.isEmpty ? "**Healthy.**" : "**Unhealthy:**")
        for problem in problems { lines.append("- \(problem)") }
        print(lines.joined(separator: "\n"))
        if !problems.isEmpty { throw ExitCode(1) }
    }
}

enum PIDFileReader {
    static func read(_ path: String) -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap {
            Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

enum SystemdProbe {
    /// `systemctl --user is-active spendwall.service`, when a user manager answers.
    static func unitState() -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["systemctl", "--user", "is-active", "spendwall.service"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = Pipe()
        do {
            try process.run()
            process.waitUntilExit()
        } catch {
            return "systemctl not available"
        }
        let state = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return state.isEmpty ? "no systemd user manager answered" : "spendwall.service: \(state)"
    }
}
