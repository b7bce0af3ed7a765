import SpendwallStripe

/// A secret (webhook URL, signing secret, SMTP password) read from alerts.toml, the environment
/// or a private file. Its description never shows the value, so it cannot reach a log.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    public init(_ value: String) { self.value = value }
    public var description: String { "<secret>" }
    public var debugDescription: String { "<secret>" }
}

/// alerts.toml: where events go (Slack, email, webhooks), how deliveries are retried, and the
/// Stripe webhook and reconciliation settings.
public struct AlertsConfiguration: Sendable {
    public var transports: [AlertTransportConfiguration] = []
    public var routes: [AlertRoute] = []
    public var dispatch = AlertDispatchSettings()
    public var stripe: StripeSettings?

    public init() {}

    /// The transports an event kind goes to, in configuration order, each once.
    public func transports(for kind: String) -> [AlertTransportConfiguration] {
        var names: [String] = []
        for route in routes where route.kinds.contains(kind) || route.kinds.contains("*") {
            for name in route.transports where !names.contains(name) { names.append(name) }
        }
        return names.compactMap { name in transports.first { $0.name == name } }
    }

    /// The event kinds alerts.toml may route.
    public static let routableKinds: Set<String> = [
        "CapAlert", "CapBlocked", "ApprovalRequested", "KillSwitch", "ConfigError", "ReconciliationDrift",
    ]
}

public struct AlertRoute: Sendable, Hashable {
    public var kinds: [String]
    public var transports: [String]
    public init(kinds: [String], transports: [String]) {
        self.kinds = kinds
        self.transports = transports
    }
}

/// One named destination.
public struct AlertTransportConfiguration: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case slack, webhook, email
    }

    public var name: String
    public var kind: Kind
    /// Slack's incoming webhook URL, the webhook's URL, or the SMTP server (`smtp://host:587`).
    public var url: Secret
    /// Webhook: the HMAC-SHA256 key of the signature header (none: unsigned).
    public var signingSecret: Secret?
    /// Webhook: the header that carries `t=<unix seconds>,v1=<hex HMAC of "t.body">`.
    public var signatureHeader = "X-Spendwall-Signature"
    // Email
    public var from: String?
    public var to: [String] = []
    public var username: String?
    public var password: Secret?
    /// Email: refuse to send unless the server upgrades to TLS with STARTTLS.
    public var requireTLS = true
    /// Email: a PEM file of CA certificates to trust instead of the system's.
    public var caFile: String?
    /// The deadline of one delivery.
    public var timeoutMS: Int64 = 10_000

    public init(name: String, kind: Kind, url: Secret) {
        self.name = name
        self.kind = kind
        self.url = url
    }

    public var description: String { "\(kind.rawValue) transport \"\(name)\"" }
}

/// `[dispatch]`: retries and rate limits.
public struct AlertDispatchSettings: Sendable, Hashable {
    public var baseDelayMS: Int64 = 1_000
    public var maxDelayMS: Int64 = 300_000
    public var maxAttempts = 8
    public var jitter = 0.5
    /// One alert per cap, per kind, per this window (the rest are counted and summarised).
    public var rateLimitWindowMS: Int64 = 3_600_000
    /// Most alerts waiting per transport; past it the oldest are dead-lettered.
    public var queueLimit = 1_000
    /// The panel's address, linked from Slack messages and email.
    public var panelURL: String?

    public init() {}
}

/// `[stripe]`: the webhook's signing secret and the reconciliation rules.
public struct StripeSettings: Sendable {
    public var secret: Secret?
    public var toleranceSeconds: Int64 = StripeSignature.defaultTolerance
    public var mapping: InvoiceMapping = .default
    public var driftThresholdNanoUSD: Int64? = 1_000_000_000
    public var driftThresholdFraction: Double?

    public init() {}
}
