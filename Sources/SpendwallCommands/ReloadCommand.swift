import ArgumentParser
import Foundation

struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract:
            "Reload caps.toml, labels.toml and pricing.toml; a file with an error keeps the running configuration.")

    func run() async throws {
        let response = try await CommandContext.client.post("/v1/reload", json: Data("{}".utf8))
        guard response.status == 200 else {
            throw CLIFailure.failure(
                "\(response.error?.message ?? "HTTP \(response.status)"); the running configuration is unchanged")
        }
        let caps = response.json?["caps"] as? Int ?? 0
        print("reloaded: \(caps) caps in force")
    }
}
