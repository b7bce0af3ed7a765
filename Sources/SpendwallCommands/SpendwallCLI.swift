import ArgumentParser
import Foundation
import SpendwallConfig
import SpendwallCore

/// The `spendwall` command line. Exit codes: 0 ok, 1 failure, 2 usage error, 3 daemon
/// unreachable.
public struct SpendwallCLI: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "spendwall",
        abstract: "Observe, cap and attribute what AI agents spend on LLM APIs.",
        subcommands: [
            InitCommand.self, DaemonCommand.self, StartCommand.self, StopCommand.self, StatusCommand.self,
            LsCommand.self, LogsCommand.self, CapsCommand.self, KillCommand.self, ApprovalsCommand.self,
            AlertsCommand.self, ReconcileCommand.self,
            ExportCommand.self, EstimateCommand.self, PricingCommand.self, McpCommand.self,
            RunCommand.self, SessionsCommand.self,
            DoctorCommand.self, PanelCommand.self,
            ReloadCommand.self,
            ServiceCommand.self,
            TokenizerCommand.self,
        ])

    public init() {}

    /// Parses the arguments, runs the command and exits with Spendwall's exit codes.
    public static func runMain() async -> Never {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Foundation.exit(0)
        } catch let exit as ExitCode {
            // `run` ends with its program's exit status.
            Foundation.exit(exit.rawValue)
        } catch let failure as CLIFailure {
            FileHandle.standardError.write(Data(("spendwall: " + failure.message + "\n").utf8))
            Foundation.exit(failure.code)
        } catch let error as SpendwallError where error.code == .daemonUnreachable {
            FileHandle.standardError.write(Data(("spendwall: " + error.message + "\n").utf8))
            Foundation.exit(3)
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data(("spendwall: " + error.description + "\n").utf8))
            Foundation.exit(1)
        } catch let error as SpendwallError {
            FileHandle.standardError.write(Data(("spendwall: " + error.message + "\n").utf8))
            Foundation.exit(1)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(code == .validationFailure ? 2 : (code.rawValue == 0 ? 0 : code.rawValue == 64 ? 2 : 1))
        }
    }
}

/// A command's failure with the message to print and the exit code.
struct CLIFailure: Error {
    var message: String
    var code: Int32

    static func failure(_ message: String) -> CLIFailure { CLIFailure(message: message, code: 1) }
    static func usage(_ message: String) -> CLIFailure { CLIFailure(message: message, code: 2) }
}
