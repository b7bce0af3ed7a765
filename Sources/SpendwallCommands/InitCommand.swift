import ArgumentParser
import SpendwallConfig

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Write the default configuration files (never overwrites existing ones).")

    func run() async throws {
        let paths = CommandContext.paths
        for (file, result) in try DefaultConfigFiles.write(paths: paths) {
            print(result == .written ? "wrote \(file)" : "kept  \(file) (already exists)")
        }
        print("data directory: \(paths.dataDirectory)")
    }
}
