import Foundation

/// Where Spendwall keeps its configuration, data and socket (DESIGN.md: paths and environment).
public struct SpendwallPaths: Sendable, Hashable {
    public var configDirectory: String
    public var dataDirectory: String
    public var socketPath: String

    public init(configDirectory: String, dataDirectory: String, socketPath: String) {
        self.configDirectory = configDirectory
        self.dataDirectory = dataDirectory
        self.socketPath = socketPath
    }

    /// Resolves the paths from the environment: `SPENDWALL_*` overrides, then XDG, then defaults.
    public static func resolve(environment env: [String: String] = ProcessInfo.processInfo.environment)
        -> SpendwallPaths
    {
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        let config =
            env["SPENDWALL_CONFIG_DIR"].nonEmpty
            ?? (env["XDG_CONFIG_HOME"].nonEmpty ?? home + "/.config") + "/spendwall"
        let data =
            env["SPENDWALL_DATA_DIR"].nonEmpty
            ?? (env["XDG_DATA_HOME"].nonEmpty ?? home + "/.local/share") + "/spendwall"
        let socket =
            env["SPENDWALL_SOCKET"].nonEmpty
            ?? (env["XDG_RUNTIME_DIR"].nonEmpty.map { $0 + "/spendwall" } ?? "/tmp/spendwall-\(getuid())")
            + "/spendwall.sock"
        return SpendwallPaths(configDirectory: config, dataDirectory: data, socketPath: socket)
    }

    public var socketDirectory: String { (socketPath as NSString).deletingLastPathComponent }
    public var ledgerPath: String { dataDirectory + "/spendwall.db" }
    public var spoolDirectory: String { dataDirectory + "/spool" }
    /// The PID file `start`/`stop` use, beside the socket.
    public var pidFile: String { socketDirectory + "/spendwall.pid" }
    /// The log file of a daemon started with `spendwall start`.
    public var logFile: String { dataDirectory + "/spendwall.log" }

    public func configFile(_ name: String) -> String { configDirectory + "/" + name }
}

extension Optional where Wrapped == String {
    var nonEmpty: String? {
        guard let self, !self.isEmpty else { return nil }
        return self
    }
}
