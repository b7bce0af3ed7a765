import Foundation
import Logging
import ServiceLifecycle
import SpendwallAlerts
import SpendwallConfig
import SpendwallCore
import SpendwallLedger
import SpendwallPanel
import SpendwallPolicy
import SpendwallPricing
import SpendwallTeam
import UnixSignals

/// The daemon: loads configuration, opens the ledger, rebuilds the caps' windows from it, and
/// runs the services under one `ServiceGroup` until SIGTERM or SIGINT.
public enum Daemon {
    /// Runs the daemon in the foreground. Throws ``ConfigError`` for a configuration file that
    /// cannot be used, and ``SpendwallError`` when the socket or ledger cannot be set up.
    public static func run(configuration: SpendwallConfiguration, logger: Logger) async throws {
        umask(0o077)
        let paths = configuration.paths
        let caps = try CapsFile.load(paths: paths)
        let labels = try LabelsFile.load(paths: paths)
        let alerts = try AlertsFile.load(paths: paths)
        let overrides = try PricingFile.load(paths: paths)
        var builtin = try BuiltinPrices.table()
        builtin.fallback = configuration.fallbackPrice

        try FileManager.default.createDirectory(
            atPath: paths.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let store: SQLiteLedger
        do {
            store = try SQLiteLedger.open(path: paths.ledgerPath)
        } catch {
            throw SpendwallError(.unavailable, "cannot open the ledger at \(paths.ledgerPath): \(error)")
        }
        let team = configuration.team
        if team == nil, let cap = caps.first(where: \.team) {
            logger.warning(
                "caps.toml: cap '\(cap.name)' is a team cap but spendwall.toml has no [team] section; it holds for this machine only"
            )
        }
        let engine = PolicyEngine(
            caps: caps, pricing: builtin.merging(overrides),
            settings: PolicySettings(
                reservationTTLMS: configuration.reservationTTLMS, team: team.map(Self.teamPolicy)))
        engine.seed(try await DaemonState.history(for: caps, store: store))
        engine.learnOutputs(
            try await store.recentOutputs(limit: 50_000).map {
                RecordedOutput(agent: $0.agent, model: $0.model, outputTokens: $0.outputTokens)
            })
        try await ReservationKeeper.restore(engine: engine, store: store, logger: logger)
        for scope in try await store.activeKills() {
            engine.setKill(scope, on: true)
            logger.warning(
                "the \(scope) kill switch is on (turn it off with `spendwall kill\(SocketAPI.killFlag(scope)) --off`)")
        }
        let metrics = DaemonMetrics()
        let events = EventBus(onDrop: { metrics.eventDropped() })
        let expired = try await store.expirePendingApprovals(
            resolution: "the daemon stopped while it was pending", atMS: SystemWallClock().nowMS())
        if expired > 0 { logger.notice("\(expired) approvals pending at the last stop are recorded as expired") }

        let activated = Systemd.listenFDs().first.flatMap { Systemd.isUnixStreamListener($0) ? $0 : nil }
        let state = DaemonState(
            configuration: configuration, socketActivated: activated != nil, engine: engine, store: store,
            builtinPrices: builtin, labels: labels, events: events, logger: logger,
            live: try LiveSettings(configuration))
        let writer = LedgerWriter(store: store, logger: logger, onCommit: metrics.committed)
        let loopbackStatus = ListenerStatus()
        let inFlight = InFlightCalls()
        let keys = try ProviderKeys.load(paths: paths)
        let upstreamClient = ProxyForwarder.makeClient(
            connectTimeoutMS: configuration.upstreamConnectTimeoutMS, readTimeoutMS: configuration.upstreamReadTimeoutMS
        )
        var api = SocketAPI(
            engine: engine, writer: writer, events: events, approvals: ApprovalDesk(), state: state, metrics: metrics,
            loopback: loopbackStatus, inFlight: inFlight, clock: SystemWallClock(),
            logger: logger)
        if let key = keys.anthropic {
            api.anthropicCount = AnthropicTokenCount(
                client: upstreamClient, upstream: configuration.anthropicUpstream, key: key)
        } else if configuration.anthropicCountTokens {
            logger.warning(
                "[estimate] anthropic_count_tokens is on but no Anthropic key is configured (keys.toml or SPENDWALL_ANTHROPIC_KEY): Anthropic calls are estimated locally"
            )
        }
        let dispatcher = AlertDispatcher(
            configuration: alerts, store: store, logger: logger)
        events.observe { kind, json in dispatcher.submit(kind: kind, event: json) }
        let stripeSettings = LiveStripeSettings(alerts.stripe)
        let reconciler = Reconciler(store: store, events: events, live: stripeSettings, clock: SystemWallClock())
        api.integrations = IntegrationsAPI(
            dispatcher: dispatcher, store: store, reconciler: reconciler, clock: SystemWallClock())
        let teamStatus = TeamStatus()
        api.team = TeamAPI(
            mode: team.map {
                TeamAPI.Mode(
                    configuration: $0, status: teamStatus,
                    ledger: TeamLedger(database: TeamDatabase($0, logger: logger), logger: logger), shipping: store)
            }, engine: engine, clock: SystemWallClock())
        let stripe = StripeWebhook(
            live: stripeSettings, store: store, reconciler: reconciler, clock: SystemWallClock(), logger: logger)
        state.onAlertsReload { alerts in
            dispatcher.reconfigure(alerts)
            stripeSettings.update(alerts.stripe)
        }
        // Sessions still running at the last stop keep their budget, counted from the ledger.
        for session in try await store.runningSessions() {
            let spent = try await store.sessionSpend(id: session.id).total
            api.adopt(session, spentNanoUSD: spent.costNanoUSD, spentTokens: spent.usage.totalTokens)
        }
        let panelToken: String
        do {
            panelToken = try PanelToken.loadOrCreate(path: paths.configFile("panel.token"))
        } catch {
            throw SpendwallError(
                .unavailable, "cannot write the panel's token \(paths.configFile("panel.token")): \(error)")
        }
        let loopback = LoopbackServer(
            address: configuration.proxyListen, status: loopbackStatus,
            forwarder: ProxyForwarder(
                api: api, state: state, client: upstreamClient,
                openAIUpstream: configuration.openAIUpstream, anthropicUpstream: configuration.anthropicUpstream,
                keys: keys, costHeaders: configuration.costHeaders,
                injectStreamUsage: configuration.openAIStreamUsage == .inject, logger: logger),
            stripe: stripe, panel: PanelServer(api: api, token: panelToken),
            maxBodyBytes: configuration.maxBodyBytes, logger: logger
        ) {
            metrics.render(reservationsInFlight: engine.inFlight().count, eventSubscribers: events.subscriberCount)
        }
        let server = SocketServer(
            socketPath: paths.socketPath, activatedFD: activated, api: api, state: state,
            maxBodyBytes: configuration.maxBodyBytes, logger: logger
        ) {
            PIDFile.write(paths.pidFile)
            Systemd.notify("READY=1\nSTATUS=serving on \(paths.socketPath), \(caps.count) caps")
            logger.info("ready: pid \(getpid()), \(caps.count) caps, ledger \(paths.ledgerPath)")
        }
        var services: [any Service] = [
            writer, dispatcher, ReservationKeeper(engine: engine, writer: writer, logger: logger), server, loopback,
        ]
        if let team {
            // Before the socket server: at a stop they end after it, giving leases back and
            // shipping the last rows.
            logger.info("team mode: machine '\(team.machine)', database \(team.displayURL)")
            services.insert(
                TeamLeaseService(
                    engine: engine, database: TeamDatabase(team, logger: logger), team: team, status: teamStatus,
                    logger: logger), at: 3)
            services.insert(
                TeamShipper(
                    source: store, database: TeamDatabase(team, logger: logger), machine: team.machine,
                    status: teamStatus, logger: logger), at: 4)
        }
        services.append(ReloadOnHangup(state: state))
        services.append(SessionWatcher(api: api))
        services.append(ConfigWatcher(state: state))
        if let interval = Systemd.watchdogInterval() {
            services.append(WatchdogService(intervalMicroseconds: interval))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        defer { PIDFile.remove(paths.pidFile) }
        try await group.run()
        logger.info("stopped")
    }
}

extension Daemon {
    static func teamPolicy(_ team: TeamConfiguration) -> TeamPolicy {
        TeamPolicy(offline: team.offline == .localOnly ? .localOnly : .block)
    }
}

/// Reloads caps, labels and prices on SIGHUP; a bad file keeps the running configuration.
struct ReloadOnHangup: Service {
    let state: DaemonState

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            _ = try? await state.reload()
        }
    }
}
