import Foundation
import Logging
import SpendwallConfig
import SpendwallCore
import SpendwallLedger
import SpendwallPeer
import SpendwallPolicy
import SpendwallPricing
import Synchronization

/// The settings of spendwall.toml that apply without a restart, swapped whole by a reload.
struct LiveSettings: Sendable {
    var configuration: SpendwallConfiguration
    var estimator: RequestEstimator
    var redactor: TagRedactor

    init(_ configuration: SpendwallConfiguration) throws {
        self.configuration = configuration
        estimator = RequestEstimator(
            defaultMaxTokens: configuration.defaultMaxTokens,
            tokenizers: InstalledTokenizers.counters(dataDirectory: configuration.paths.dataDirectory))
        redactor = try TagRedactor(
            keys: configuration.redactTags, valuePattern: configuration.redactValuePattern,
            keyFile: configuration.paths.dataDirectory + "/redact.key")
    }

    var failMode: SpendwallConfiguration.FailMode { configuration.failMode }
    var approvalTimeout: Swift.Duration { .milliseconds(configuration.approvalTimeoutMS) }

    /// The keys of spendwall.toml that only a restart applies, by name, when they differ.
    static func restartOnlyChanges(from old: SpendwallConfiguration, to new: SpendwallConfiguration) -> [String] {
        var changed: [String] = []
        if old.maxBodyBytes != new.maxBodyBytes { changed.append("[daemon] max_body_bytes") }
        if old.logLevel != new.logLevel { changed.append("[daemon] log_level") }
        if old.proxyListen != new.proxyListen { changed.append("[proxy] listen") }
        if old.openAIUpstream != new.openAIUpstream { changed.append("[upstream] openai") }
        if old.anthropicUpstream != new.anthropicUpstream { changed.append("[upstream] anthropic") }
        if old.upstreamConnectTimeoutMS != new.upstreamConnectTimeoutMS { changed.append("[proxy] connect_timeout") }
        if old.upstreamReadTimeoutMS != new.upstreamReadTimeoutMS { changed.append("[proxy] read_timeout") }
        if old.costHeaders != new.costHeaders { changed.append("[proxy] cost_headers") }
        if old.openAIStreamUsage != new.openAIStreamUsage { changed.append("[proxy] openai_stream_usage") }
        if old.team != new.team { changed.append("[team]") }
        return changed
    }
}

/// What the running daemon knows about itself, and the configuration it can reload.
final class DaemonState: Sendable {
    static let version = "0.1.0"

    let configuration: SpendwallConfiguration
    let startedAtMS: Int64
    let socketActivated: Bool
    let engine: PolicyEngine
    let store: any LedgerStore
    let builtinPrices: PriceTable
    let logger: Logger
    let events: EventBus
    /// The `spendwall run` sessions that are running.
    let sessions = SessionRegistry()
    private let inspector: Mutex<ProcessInspector>
    private let lastConfigError = Mutex<ConfigError?>(nil)
    private let liveSettings: Mutex<LiveSettings>
    private let alertsReload = Mutex<(@Sendable (AlertsConfiguration) -> Void)?>(nil)

    /// Who takes a reloaded alerts.toml (the alert dispatcher and the Stripe webhook).
    func onAlertsReload(_ apply: @escaping @Sendable (AlertsConfiguration) -> Void) {
        alertsReload.withLock { $0 = apply }
    }

    /// What spendwall.toml says now (reloaded on change).
    var live: LiveSettings { liveSettings.withLock { $0 } }

    /// The error of the last reload that failed, until a reload succeeds.
    var configError: ConfigError? { lastConfigError.withLock { $0 } }

    var failMode: String { live.failMode.rawValue }
    var socketPath: String { configuration.paths.socketPath }

    init(
        configuration: SpendwallConfiguration, socketActivated: Bool, engine: PolicyEngine, store: any LedgerStore,
        builtinPrices: PriceTable, labels: [LabelRule], events: EventBus, logger: Logger, live: LiveSettings
    ) {
        self.liveSettings = Mutex(live)
        self.events = events
        self.configuration = configuration
        self.startedAtMS = SystemWallClock().nowMS()
        self.socketActivated = socketActivated
        self.engine = engine
        self.store = store
        self.builtinPrices = builtinPrices
        self.logger = logger
        self.inspector = Mutex(ProcessInspector(labels: LabelMatcher(rules: labels)))
    }

    /// The identity of a connection's peer from its kernel credentials.
    func identify(_ credentials: PeerCredentials?) -> PeerIdentity {
        guard let credentials else { return .unknown }
        let inspector = self.inspector.withLock { $0 }
        return inspector.identify(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid)
    }

    /// Reloads spendwall.toml, caps.toml, labels.toml, pricing.toml and alerts.toml. A file with an error
    /// leaves everything as it was and throws the ``ConfigError`` naming file and line. Returns
    /// the cap count.
    func reload() async throws -> Int {
        let paths = configuration.paths
        let caps: [Cap]
        let labels: [LabelRule]
        let overrides: [String: ModelPrice]
        let settings: LiveSettings
        let alerts: AlertsConfiguration
        do {
            settings = try LiveSettings(SpendwallConfiguration.load(paths: paths))
            caps = try CapsFile.load(paths: paths)
            labels = try LabelsFile.load(paths: paths)
            overrides = try PricingFile.load(paths: paths)
            alerts = try AlertsFile.load(paths: paths)
        } catch let error as ConfigError {
            lastConfigError.withLock { $0 = error }
            logger.error("reload failed, keeping the running configuration: \(error)")
            events.publish(
                "ConfigError", ConfigErrorEvent(file: error.file, line: error.line, message: error.description))
            throw error
        }
        let history = try await Self.history(for: caps, store: store)
        var builtin = builtinPrices
        builtin.fallback = settings.configuration.fallbackPrice
        let previous = liveSettings.withLock { live in
            defer { live = settings }
            return live.configuration
        }
        // Team mode itself changes only at a restart: the running one is kept.
        engine.update(
            PolicySettings(
                reservationTTLMS: settings.configuration.reservationTTLMS,
                team: configuration.team.map(Daemon.teamPolicy)))
        engine.reconfigure(caps: caps, pricing: builtin.merging(overrides), history: history)
        inspector.withLock { $0.labels = LabelMatcher(rules: labels) }
        alertsReload.withLock { $0 }?(alerts)
        let restartOnly = LiveSettings.restartOnlyChanges(from: previous, to: settings.configuration)
        if !restartOnly.isEmpty {
            logger.warning(
                "spendwall.toml: \(restartOnly.joined(separator: ", ")) changed; that applies at the next start (`spendwall stop` and start again, or `systemctl --user restart spendwall`)"
            )
        }
        lastConfigError.withLock { $0 = nil }
        events.publish("ConfigReloaded", ConfigReloadedEvent(caps: caps.count))
        logger.info(
            "configuration reloaded: \(caps.count) caps, \(labels.count) labels, \(overrides.count) price overrides")
        return caps.count
    }

    /// Ledger spend old enough to matter to any of `caps`' windows.
    static func history(for caps: [Cap], store: any LedgerStore) async throws -> [SpendRecord] {
        guard let lookback = caps.map(\.window.lookbackMS).max() else { return [] }
        let since = SystemWallClock().nowMS() - lookback
        return try await store.windowSpend(sinceMS: since).map {
            SpendRecord(attributes: $0.attributes, costNanoUSD: $0.costNanoUSD, tokens: $0.tokens, timeMS: $0.timeMS)
        }
    }
}
