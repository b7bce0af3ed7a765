import GRDB

/// The ledger schema, as numbered migrations. Never edit a shipped migration: add the next one.
enum LedgerMigrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("1-spend-events") { db in
            try db.execute(
                sql: """
                    CREATE TABLE spend_events (
                        id INTEGER PRIMARY KEY,
                        request_id TEXT NOT NULL UNIQUE,
                        time_ms INTEGER NOT NULL,
                        path TEXT NOT NULL,
                        provider TEXT NOT NULL,
                        model TEXT NOT NULL,
                        agent TEXT,
                        app TEXT NOT NULL,
                        peer_pid INTEGER,
                        peer_uid INTEGER,
                        peer_exe TEXT,
                        peer_script TEXT,
                        session TEXT,
                        tags TEXT NOT NULL DEFAULT '{}',
                        input_tokens INTEGER NOT NULL DEFAULT 0,
                        output_tokens INTEGER NOT NULL DEFAULT 0,
                        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
                        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
                        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
                        cost_nanousd INTEGER NOT NULL,
                        reserved_nanousd INTEGER NOT NULL DEFAULT 0,
                        priced INTEGER NOT NULL,
                        status INTEGER,
                        outcome TEXT NOT NULL,
                        duration_ms INTEGER,
                        reservation_id TEXT
                    );
                    CREATE INDEX spend_events_time ON spend_events(time_ms);
                    CREATE TABLE pending_reservations (
                        id TEXT PRIMARY KEY,
                        body TEXT NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("2-kill-switches") { db in
            // The switches that are on, and every flip (who, when, which scope).
            try db.execute(
                sql: """
                    CREATE TABLE kill_switches (
                        kind TEXT NOT NULL,
                        value TEXT NOT NULL DEFAULT '',
                        since_ms INTEGER NOT NULL,
                        PRIMARY KEY (kind, value)
                    );
                    CREATE TABLE kill_flips (
                        id INTEGER PRIMARY KEY,
                        time_ms INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        value TEXT,
                        turned_on INTEGER NOT NULL,
                        peer_pid INTEGER,
                        peer_uid INTEGER,
                        peer_exe TEXT
                    );
                    """)
        }
        migrator.registerMigration("3-approvals") { db in
            try db.execute(
                sql: """
                    CREATE TABLE approvals (
                        id TEXT PRIMARY KEY,
                        created_ms INTEGER NOT NULL,
                        provider TEXT NOT NULL,
                        model TEXT NOT NULL,
                        agent TEXT,
                        app TEXT NOT NULL,
                        session TEXT,
                        peer_pid INTEGER,
                        estimated_nanousd INTEGER NOT NULL,
                        cap TEXT NOT NULL,
                        cap_key TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        status TEXT NOT NULL,
                        resolved_ms INTEGER,
                        resolution TEXT,
                        resolved_by_pid INTEGER,
                        resolved_by_exe TEXT
                    );
                    CREATE INDEX approvals_status ON approvals (status, created_ms);
                    """)
        }
        migrator.registerMigration("4-estimated") { db in
            // 1 when some of a row's usage was estimated (a stream that never reported it).
            try db.execute(sql: "ALTER TABLE spend_events ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("5-cache-write-1h") { db in
            // The part of cache_write_tokens written with Anthropic's 1-hour lifetime.
            try db.execute(
                sql: "ALTER TABLE spend_events ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("6-alert-dead-letters") { db in
            // Alerts that exhausted their retries or failed permanently, for `spendwall alerts`.
            try db.execute(
                sql: """
                    CREATE TABLE alert_dead_letters (
                        id INTEGER PRIMARY KEY,
                        created_ms INTEGER NOT NULL,
                        transport TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        event TEXT NOT NULL,
                        attempts INTEGER NOT NULL,
                        last_error TEXT NOT NULL,
                        status TEXT NOT NULL DEFAULT 'dead',
                        retried_ms INTEGER
                    );
                    CREATE INDEX alert_dead_letters_status ON alert_dead_letters (status, created_ms);
                    """)
        }
        migrator.registerMigration("6-stripe-reconciliation") { db in
            // Raw Stripe webhook events (the id refuses replays) and what invoices and cost
            // exports billed per provider and month.
            try db.execute(
                sql: """
                    CREATE TABLE stripe_events (
                        id TEXT PRIMARY KEY,
                        type TEXT NOT NULL,
                        created INTEGER,
                        livemode INTEGER,
                        received_ms INTEGER NOT NULL,
                        payload TEXT NOT NULL
                    );
                    CREATE TABLE reconciliations (
                        id INTEGER PRIMARY KEY,
                        period TEXT NOT NULL,
                        provider TEXT NOT NULL,
                        source TEXT NOT NULL,
                        reference TEXT NOT NULL,
                        billed_nanousd INTEGER NOT NULL,
                        ledger_nanousd INTEGER NOT NULL,
                        drift_nanousd INTEGER NOT NULL,
                        updated_ms INTEGER NOT NULL,
                        UNIQUE (period, provider, source, reference)
                    );
                    """)
        }
        migrator.registerMigration("5-sessions") { db in
            // `spendwall run` sessions and what they left: a git snapshot, the terminal output.
            try db.execute(
                sql: """
                    CREATE TABLE sessions (
                        id TEXT PRIMARY KEY,
                        name TEXT,
                        command TEXT NOT NULL,
                        cwd TEXT,
                        git_branch TEXT,
                        git_head TEXT,
                        agent TEXT,
                        tags TEXT NOT NULL DEFAULT '{}',
                        budget_nanousd INTEGER,
                        budget_tokens INTEGER,
                        terminal TEXT,
                        pid INTEGER,
                        started_ms INTEGER NOT NULL,
                        ended_ms INTEGER,
                        exit_code INTEGER,
                        exit_signal INTEGER,
                        stop_reason TEXT,
                        resume_command TEXT
                    );
                    CREATE INDEX sessions_started ON sessions (started_ms);
                    CREATE INDEX spend_events_session ON spend_events (session) WHERE session IS NOT NULL;
                    CREATE TABLE session_artifacts (
                        id INTEGER PRIMARY KEY,
                        session TEXT NOT NULL REFERENCES sessions (id),
                        kind TEXT NOT NULL,
                        created_ms INTEGER NOT NULL,
                        truncated INTEGER NOT NULL DEFAULT 0,
                        content BLOB NOT NULL,
                        UNIQUE (session, kind)
                    );
                    """)
        }
        migrator.registerMigration("7-team-shipping") { db in
            // Team mode: the id of the last row shipped to the team database. Deleting a row
            // (an `unreported` placeholder replaced by its report) moves the mark back below
            // it, so the row that replaces it ships again, whatever id it gets.
            try db.execute(
                sql: """
                    CREATE TABLE team_shipping (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        shipped_id INTEGER NOT NULL,
                        shipped_ms INTEGER
                    );
                    INSERT INTO team_shipping (id, shipped_id) VALUES (1, 0);
                    CREATE TRIGGER team_shipping_unship AFTER DELETE ON spend_events BEGIN
                        UPDATE team_shipping SET shipped_id = MIN(shipped_id, OLD.id - 1) WHERE id = 1;
                    END;
                    """)
        }
        return migrator
    }
}
