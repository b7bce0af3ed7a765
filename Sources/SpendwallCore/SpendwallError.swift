/// An error that crosses module boundaries and reaches callers over the socket API.
///
/// Each ``Code`` has one stable string shared by the socket API, the proxy's 402 body and
/// both SDKs; the message is for people and may change.
public struct SpendwallError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let badRequest = Code("bad_request")
        public static let unknownReservation = Code("unknown_reservation")
        public static let notFound = Code("not_found")
        public static let conflict = Code("conflict")
        public static let methodNotAllowed = Code("method_not_allowed")
        public static let payloadTooLarge = Code("payload_too_large")
        public static let forbiddenPeer = Code("forbidden_peer")
        public static let capExceeded = Code("cap_exceeded")
        public static let killed = Code("killed")
        public static let approvalDenied = Code("approval_denied")
        public static let unavailable = Code("unavailable")
        public static let daemonUnreachable = Code("daemon_unreachable")
        /// The proxy could not reach the provider (502).
        public static let upstreamUnavailable = Code("upstream_unavailable")
        public static let config = Code("config_error")
        /// A team request (`/v1/team…`, `ls --team`) to a daemon without `[team]` in spendwall.toml.
        public static let teamNotConfigured = Code("team_not_configured")
        /// The team database cannot be reached or failed the request.
        public static let teamUnavailable = Code("team_unavailable")
        public static let internalError = Code("internal")
    }

    public let code: Code
    public let message: String
    public let cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(code): \(message) (\(cause))" }
        return "\(code): \(message)"
    }
}
