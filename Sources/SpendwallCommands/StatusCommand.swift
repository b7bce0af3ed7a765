import ArgumentParser
import Foundation

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Say whether the daemon is running, and how it is.")

    @Flag(help: "Print the daemon's health answer as JSON.") var json = false

    func run() async throws {
        let response = try await CommandContext.get("/v1/health")
        if json { return CommandContext.printJSON(response.body) }
        let health = response.json ?? [:]
        let components = health["components"] as? [String: [String: Any]] ?? [:]
        print(
            "Spendwall \(health["version"] ?? "?") is running: pid \(health["pid"] ?? "?"), socket \(health["socket"] ?? "?")\((health["socket_activated"] as? Bool) == true ? " (socket-activated)" : "")"
        )
        print(
            "status: \(health["status"] ?? "?"), fail mode: \(health["fail_mode"] ?? "?"), caps: \(health["caps"] ?? 0)"
        )
        for name in components.keys.sorted() {
            let c = components[name]!
            print(
                "  \(name): \((c["ok"] as? Bool) == true ? "ok" : "FAILING") (\(c["latency_us"] ?? "?") µs)\((c["error"] as? String).map { " — \($0)" } ?? "")"
            )
        }
    }
}
