import Logging
import PostgresNIO

/// The team database's schema, as numbered migrations applied by the daemon at start-up (like
/// the ledger's). Never edit a shipped migration: add the next one. Daemons starting together
/// take turns through an advisory lock.
public enum TeamSchema {
    struct Migration {
        var version: Int
        var name: String
        var statements: [String]
    }

    static let migrations: [Migration] = [
        Migration(
            version: 1, name: "team-ledger-and-leases",
            statements: [
                """
                CREATE TABLE team_events (
                    machine TEXT NOT NULL,
                    request_id TEXT NOT NULL,
                    local_id BIGINT NOT NULL,
                    time_ms BIGINT NOT NULL,
                    path TEXT NOT NULL,
                    provider TEXT NOT NULL,
                    model TEXT NOT NULL,
                    agent TEXT,
                    app TEXT NOT NULL,
                    session TEXT,
                    tags JSONB NOT NULL DEFAULT '{}',
                    input_tokens BIGINT NOT NULL,
                    output_tokens BIGINT NOT NULL,
                    cache_read_tokens BIGINT NOT NULL,
                    cache_write_tokens BIGINT NOT NULL,
                    cache_write_1h_tokens BIGINT NOT NULL,
                    reasoning_tokens BIGINT NOT NULL,
                    cost_nanousd BIGINT NOT NULL,
                    reserved_nanousd BIGINT NOT NULL,
                    priced BOOLEAN NOT NULL,
                    status INTEGER,
                    outcome TEXT NOT NULL,
                    duration_ms BIGINT,
                    estimated BOOLEAN NOT NULL,
                    shipped_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    PRIMARY KEY (machine, request_id)
                )
                """,
                "CREATE INDEX team_events_time ON team_events (time_ms)",
                """
                CREATE TABLE team_budgets (
                    cap TEXT NOT NULL,
                    key TEXT NOT NULL,
                    period_ms BIGINT NOT NULL,
                    limit_nanousd BIGINT NOT NULL,
                    spent_nanousd BIGINT NOT NULL DEFAULT 0,
                    leased_nanousd BIGINT NOT NULL DEFAULT 0,
                    PRIMARY KEY (cap, key, period_ms)
                )
                """,
                """
                CREATE TABLE team_leases (
                    machine TEXT NOT NULL,
                    cap TEXT NOT NULL,
                    key TEXT NOT NULL,
                    period_ms BIGINT NOT NULL,
                    granted_nanousd BIGINT NOT NULL DEFAULT 0,
                    used_nanousd BIGINT NOT NULL DEFAULT 0,
                    returned_nanousd BIGINT NOT NULL DEFAULT 0,
                    expires_at TIMESTAMPTZ NOT NULL,
                    PRIMARY KEY (machine, cap, key, period_ms)
                )
                """,
                leaseFunction,
            ])
    ]

    /// One lease round trip: settles the machine's spend, gives back what it does not keep,
    /// takes a new slice and extends the lease, atomically. Budget row first, then lease rows,
    /// always, so concurrent calls cannot deadlock. A machine's lease counts as leased for what
    /// it was granted less what it returned and used (never below zero).
    static let leaseFunction = """
        CREATE FUNCTION spendwall_lease(
            p_machine TEXT, p_cap TEXT, p_key TEXT, p_period BIGINT, p_limit BIGINT,
            p_used BIGINT, p_want BIGINT, p_keep BIGINT, p_ttl_ms BIGINT)
        RETURNS TABLE (granted BIGINT, returned BIGINT, used BIGINT, unleased BIGINT)
        LANGUAGE plpgsql AS $fn$
        DECLARE
            l team_leases%ROWTYPE;
            stale RECORD;
            old_out BIGINT;
            new_out BIGINT;
            new_used BIGINT;
            room BIGINT;
        BEGIN
            INSERT INTO team_budgets (cap, key, period_ms, limit_nanousd)
                VALUES (p_cap, p_key, p_period, p_limit)
                ON CONFLICT (cap, key, period_ms) DO UPDATE SET limit_nanousd = EXCLUDED.limit_nanousd;
            -- Leases that expired well ago (a machine that vanished) go back to the team.
            FOR stale IN
                SELECT t.machine, t.granted_nanousd - t.returned_nanousd - t.used_nanousd AS outstanding
                FROM team_leases t
                WHERE t.cap = p_cap AND t.key = p_key AND t.period_ms = p_period AND t.machine <> p_machine
                  AND t.expires_at < now() - interval '30 seconds'
                  AND t.granted_nanousd - t.returned_nanousd - t.used_nanousd > 0
                FOR UPDATE
            LOOP
                UPDATE team_leases t SET returned_nanousd = t.returned_nanousd + stale.outstanding
                    WHERE t.machine = stale.machine AND t.cap = p_cap AND t.key = p_key AND t.period_ms = p_period;
                UPDATE team_budgets b SET leased_nanousd = b.leased_nanousd - stale.outstanding
                    WHERE b.cap = p_cap AND b.key = p_key AND b.period_ms = p_period;
            END LOOP;
            INSERT INTO team_leases (machine, cap, key, period_ms, expires_at)
                VALUES (p_machine, p_cap, p_key, p_period, now())
                ON CONFLICT (machine, cap, key, period_ms) DO NOTHING;
            SELECT * INTO l FROM team_leases t
                WHERE t.machine = p_machine AND t.cap = p_cap AND t.key = p_key AND t.period_ms = p_period
                FOR UPDATE;
            -- Settle: p_used is the machine's whole spend under this cap and period.
            old_out := GREATEST(l.granted_nanousd - l.returned_nanousd - l.used_nanousd, 0);
            new_used := GREATEST(l.used_nanousd, p_used);
            IF l.granted_nanousd - l.returned_nanousd < new_used THEN
                -- Spent past the lease (offline, local-only): nothing of it is leased any more.
                l.granted_nanousd := new_used + l.returned_nanousd;
            END IF;
            new_out := l.granted_nanousd - l.returned_nanousd - new_used;
            UPDATE team_budgets b
                SET spent_nanousd = b.spent_nanousd + (new_used - l.used_nanousd),
                    leased_nanousd = b.leased_nanousd + (new_out - old_out)
                WHERE b.cap = p_cap AND b.key = p_key AND b.period_ms = p_period;
            l.used_nanousd := new_used;
            -- Give back what the machine does not keep.
            IF p_keep IS NOT NULL AND new_out > p_keep THEN
                UPDATE team_budgets b SET leased_nanousd = b.leased_nanousd - (new_out - p_keep)
                    WHERE b.cap = p_cap AND b.key = p_key AND b.period_ms = p_period;
                l.returned_nanousd := l.returned_nanousd + (new_out - p_keep);
            END IF;
            -- Take a slice: the sum of every lease and all spend never passes the limit.
            IF p_want > 0 THEN
                UPDATE team_budgets b SET leased_nanousd = b.leased_nanousd + p_want
                    WHERE b.cap = p_cap AND b.key = p_key AND b.period_ms = p_period
                      AND b.spent_nanousd + b.leased_nanousd + p_want <= b.limit_nanousd;
                IF FOUND THEN
                    l.granted_nanousd := l.granted_nanousd + p_want;
                ELSE
                    SELECT b.limit_nanousd - b.spent_nanousd - b.leased_nanousd INTO room FROM team_budgets b
                        WHERE b.cap = p_cap AND b.key = p_key AND b.period_ms = p_period;
                    IF room > 0 THEN
                        UPDATE team_budgets b SET leased_nanousd = b.leased_nanousd + room
                            WHERE b.cap = p_cap AND b.key = p_key AND b.period_ms = p_period
                              AND b.spent_nanousd + b.leased_nanousd + room <= b.limit_nanousd;
                        IF FOUND THEN
                            l.granted_nanousd := l.granted_nanousd + room;
                        END IF;
                    END IF;
                END IF;
            END IF;
            IF p_keep IS NULL OR p_keep > 0 THEN
                l.expires_at := now() + p_ttl_ms * interval '1 millisecond';
            END IF;
            UPDATE team_leases t
                SET granted_nanousd = l.granted_nanousd, returned_nanousd = l.returned_nanousd,
                    used_nanousd = l.used_nanousd, expires_at = l.expires_at
                WHERE t.machine = p_machine AND t.cap = p_cap AND t.key = p_key AND t.period_ms = p_period;
            RETURN QUERY
                SELECT l.granted_nanousd, l.returned_nanousd, l.used_nanousd,
                       b.limit_nanousd - b.spent_nanousd - b.leased_nanousd
                FROM team_budgets b WHERE b.cap = p_cap AND b.key = p_key AND b.period_ms = p_period;
        END
        $fn$
        """

    /// Creates or migrates the schema; returns the versions applied now.
    @discardableResult
    public static func migrate(_ connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        try await connection.query("BEGIN", logger: logger)
        do {
            // One daemon migrates at a time; the others then find the work done.
            try await connection.query("SELECT pg_advisory_xact_lock(7245013)", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS spendwall_migrations (
                    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """, logger: logger)
            var applied: Set<Int> = []
            for try await version in try await connection.query(
                "SELECT version FROM spendwall_migrations", logger: logger
            ).decode(Int.self) {
                applied.insert(version)
            }
            var done: [Int] = []
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO spendwall_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                done.append(migration.version)
            }
            try await connection.query("COMMIT", logger: logger)
            return done
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
