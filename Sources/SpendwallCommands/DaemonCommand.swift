import ArgumentParser
import Foundation
import Logging
import SpendwallConfig
import SpendwallDaemon

struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon", abstract: "Run the daemon in the foreground (what systemd starts).")

    func run() async throws {
        let configuration = try SpendwallConfiguration.load(paths: CommandContext.paths)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
            return handler
        }
        try await Daemon.run(configuration: configuration, logger: Logger(label: "spendwall"))
    }
}
