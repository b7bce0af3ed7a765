import Logging
import PostgresNIO
import SpendwallConfig
import SpendwallCore

/// One connection to the team database, opened on first use and again after any failure.
///
/// Each team service owns one, so its statements run one at a time and a stopped database
/// fails them at once (connection refused) instead of queueing them in a pool; every use is
/// bounded by a timeout, so nothing waits on an unreachable server for long.
public actor TeamDatabase {
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private let timeout: Swift.Duration
    private var connection: PostgresConnection?
    private var nextID = 0

    public init(_ team: TeamConfiguration, logger: Logger, timeout: Swift.Duration = .seconds(5)) {
        // TLS when the server offers it (a team database is usually on another machine).
        let tls: PostgresConnection.Configuration.TLS
        if let context = try? NIOSSLContext(configuration: .makeClientConfiguration()) {
            tls = .prefer(context)
        } else {
            tls = .disable
        }
        var configuration = PostgresConnection.Configuration(
            host: team.host, port: team.port, username: team.user, password: team.password,
            database: team.databaseName, tls: tls)
        configuration.options.connectTimeout = .seconds(3)
        self.configuration = configuration
        self.logger = logger
        self.timeout = timeout
    }

    /// Runs `body` on the connection (opening it if needed). Any failure closes the connection,
    /// so the next use starts afresh.
    public func run<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let connection: PostgresConnection
        if let open = self.connection, !open.isClosed {
            connection = open
        } else {
            nextID += 1
            let (configuration, logger, id) = (self.configuration, self.logger, nextID)
            connection = try await withTimeout(timeout) {
                try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
            }
            self.connection = connection
        }
        do {
            return try await withTimeout(timeout) { try await body(connection) }
        } catch {
            self.connection = nil
            try? await connection.close()
            throw error
        }
    }

    /// Closes the connection (at shutdown).
    public func close() async {
        if let connection { try? await connection.close() }
        connection = nil
    }
}

/// The team database did not answer in time.
struct TeamTimeout: Error, CustomStringConvertible {
    var description: String { "the team database did not answer in time" }
}

/// Runs `body`, failing with ``TeamTimeout`` when it takes longer than `limit`.
func withTimeout<T: Sendable>(_ limit: Swift.Duration, _ body: @escaping @Sendable () async throws -> T) async throws
    -> T
{
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TeamTimeout()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// A short description of a team database error for logs and `doctor`.
func describe(_ error: any Error) -> String {
    if let psql = error as? PSQLError {
        if let message = psql.serverInfo?[.message] { return "PostgreSQL: \(message)" }
        return "PostgreSQL \(psql.code)" + (psql.underlying.map { ": \($0)" } ?? "")
    }
    return "\(error)"
}
