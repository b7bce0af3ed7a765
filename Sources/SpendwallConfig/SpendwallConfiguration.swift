import SpendwallCore
import SpendwallPricing

/// Everything the daemon is configured with. Every field has a default, so
/// `SpendwallConfiguration()` is a working configuration; loading from files and the
/// environment is ``load(paths:environment:)``.
public struct SpendwallConfiguration: Sendable {
    /// What SDKs do when the daemon cannot be reached.
    public enum FailMode: String, Sendable, CaseIterable {
        case open, closed
    }

    public var paths: SpendwallPaths
    public var failMode: FailMode
    /// Output tokens assumed when a request sets no limit.
    public var defaultMaxTokens: Int64
    /// How long a reservation waits for its report.
    public var reservationTTLMS: Int64
    /// How long a check held for approval waits before it is denied.
    public var approvalTimeoutMS: Int64
    /// The largest request body the socket API accepts.
    public var maxBodyBytes: Int
    /// The price for models the table does not know.
    public var fallbackPrice: ModelPrice
    /// The loopback listener: the proxy and `/metrics`.
    public var proxyListen: ListenAddress
    /// How long the proxy waits to connect to an upstream, and for its next bytes.
    public var upstreamConnectTimeoutMS: Int64 = 10_000
    public var upstreamReadTimeoutMS: Int64 = 600_000
    /// Add `x-spendwall-cost-usd`, `-input-tokens` and `-output-tokens` to the proxy's plain
    /// (non-streaming) answers. Off by default: the proxy is transparent unless asked.
    public var costHeaders = false
    /// `[estimate] anthropic_count_tokens`: ask Anthropic's count_tokens endpoint for the input
    /// of Anthropic calls (needs an Anthropic key in keys.toml or the environment).
    public var anthropicCountTokens = false
    /// OpenAI streams that do not ask for usage: `estimate` it (transparent, the default) or
    /// `inject` the request for it and hide the extra chunk (the request body is re-encoded).
    public var openAIStreamUsage = OpenAIStreamUsage.estimate

    public enum OpenAIStreamUsage: String, Sendable, CaseIterable {
        case estimate, inject
    }
    public var openAIUpstream: String
    public var anthropicUpstream: String
    public var logLevel: String
    /// Tag keys whose values are replaced by a keyed hash before anything is written.
    public var redactTags: [String] = []
    /// A regular expression: any tag value it matches is redacted too.
    public var redactValuePattern: String?
    /// `[team]`: team mode, when set.
    public var team: TeamConfiguration?

    public init(
        paths: SpendwallPaths = .resolve(),
        failMode: FailMode = .open,
        defaultMaxTokens: Int64 = 4096,
        reservationTTLMS: Int64 = 600_000,
        approvalTimeoutMS: Int64 = 300_000,
        maxBodyBytes: Int = 8 << 20,
        fallbackPrice: ModelPrice = PriceTable.defaultFallback,
        proxyListen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 8787),
        openAIUpstream: String = "https://api.openai.com",
        anthropicUpstream: String = "https://api.anthropic.com",
        logLevel: String = "info"
    ) {
        self.paths = paths
        self.failMode = failMode
        self.defaultMaxTokens = defaultMaxTokens
        self.reservationTTLMS = reservationTTLMS
        self.approvalTimeoutMS = approvalTimeoutMS
        self.maxBodyBytes = maxBodyBytes
        self.fallbackPrice = fallbackPrice
        self.proxyListen = proxyListen
        self.openAIUpstream = openAIUpstream
        self.anthropicUpstream = anthropicUpstream
        self.logLevel = logLevel
    }
}
