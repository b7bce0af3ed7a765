import Foundation
import Logging
import SpendwallConfig
import SpendwallCore
import SpendwallLedger
import SpendwallPeer
import SpendwallPolicy
import SpendwallPricing
import Synchronization

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
    private let inspector: Mutex<ProcessInspector>
    private let lastConfigError = Mutex<ConfigError?>(nil)

    /// The error of the last reload that failed, until a reload succeeds.
    var configError: ConfigError? { lastConfigError.withLock { $0 } }

    var failMode: String { configuration.failMode.rawValue }
    var socketPath: String { configuration.paths.socketPath }

    init(
        configuration: SpendwallConfiguration, socketActivated: Bool, engine: PolicyEngine, store: any LedgerStore,
        builtinPrices: PriceTable, labels: [LabelRule], events: EventBus, logger: Logger
    ) {
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

    /// Reloads caps.toml, labels.toml and pricing.toml. A file with an error leaves everything
    /// as it was and throws the ``ConfigError`` naming file and line. Returns the cap count.
    func reload() async throws -> Int {
        let paths = configuration.paths
        let caps: [Cap]
        let labels: [LabelRule]
        let overrides: [String: ModelPrice]
        do {
            caps = try CapsFile.load(paths: paths)
            labels = try LabelsFile.load(paths: paths)
            overrides = try PricingFile.load(paths: paths)
        } catch {
            lastConfigError.withLock { $0 = error }
            logger.error("reload failed, keeping the running configuration: \(error)")
            events.publish(
                "ConfigError", ConfigErrorEvent(file: error.file, line: error.line, message: error.description))
            throw error
        }
        let history = try await Self.history(for: caps, store: store)
        engine.reconfigure(caps: caps, pricing: builtinPrices.merging(overrides), history: history)
        inspector.withLock { $0.labels = LabelMatcher(rules: labels) }
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
