import Foundation

/// `[team]` in spendwall.toml: the team database every machine ships its rows to and draws
/// team caps' leases from. Absent, the daemon runs on its own.
public struct TeamConfiguration: Sendable, Hashable {
    /// What a machine does for a team cap once its lease is spent and the team database
    /// cannot be reached.
    public enum OfflineMode: String, Sendable, CaseIterable {
        /// Decide the team cap as if it were this machine's own cap (its limit, this machine's spend).
        case localOnly = "local-only"
        /// Block the team cap's calls until the database answers again.
        case block
    }

    /// Host, port, user and database name, from `database = "postgres://user@host:port/db"`.
    public var host: String
    public var port: Int
    public var user: String
    public var databaseName: String
    /// From `SPENDWALL_TEAM_PASSWORD`, `password_file` (mode 0600) or the URL; nil for none.
    public var password: String?
    /// This machine's name in the team ledger (default: the host name).
    public var machine: String
    public var offline: OfflineMode
    /// A lease is this fraction of a team cap's limit at least (more when spend is fast).
    public var leaseFraction: Double
    /// How long a lease may be used without reaching the database; unused slices of an expired
    /// lease go back to the team.
    public var leaseTTLMS: Int64

    public init(
        host: String = "127.0.0.1", port: Int = 5432, user: String = "spendwall", databaseName: String = "spendwall",
        password: String? = nil, machine: String = ProcessInfo.processInfo.hostName, offline: OfflineMode = .block,
        leaseFraction: Double = 0.1, leaseTTLMS: Int64 = 120_000
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.databaseName = databaseName
        self.password = password
        self.machine = machine
        self.offline = offline
        self.leaseFraction = leaseFraction
        self.leaseTTLMS = leaseTTLMS
    }

    /// Why a `[team]` value cannot be used.
    struct Problem: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    /// The database URL without its password, for logs and `doctor`.
    public var displayURL: String { "postgres://\(user)@\(host):\(port)/\(databaseName)" }

    /// Parses `postgres://user[:password]@host[:port]/database`; nil with the reason otherwise.
    static func parseURL(_ text: String) -> Result<
        (host: String, port: Int, user: String, password: String?, db: String), Problem
    > {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql" else {
            return .failure(Problem("database must be a URL like \"postgres://spendwall@db.internal:5432/spendwall\""))
        }
        guard let host = url.host, !host.isEmpty else { return .failure(Problem("database URL has no host")) }
        let name = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        guard !name.isEmpty else { return .failure(Problem("database URL names no database (…/spendwall at the end)")) }
        guard let user = url.user, !user.isEmpty else {
            return .failure(Problem("database URL names no user (postgres://USER@…)"))
        }
        return .success((host, url.port ?? 5432, user, url.password, name))
    }

    /// Reads a password file, which must be readable by its owner only (mode 0600 or 0400).
    static func readPasswordFile(_ path: String) -> Result<String, Problem> {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue
        else { return .failure(Problem("password_file \(path) cannot be read")) }
        guard mode & 0o077 == 0 else {
            return .failure(
                Problem(
                    "password_file \(path) is readable by others (mode \(String(mode, radix: 8))): run `chmod 600 \(path)`"
                ))
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return .failure(Problem("password_file \(path) cannot be read"))
        }
        return .success(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
