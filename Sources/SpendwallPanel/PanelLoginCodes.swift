import Synchronization

/// One-time login codes: `spendwall panel` asks the daemon (over its socket, so only the
/// user's own processes can) for a code, and the link carrying it logs one browser in once.
public final class PanelLoginCodes: Sendable {
    /// How long a code stays usable.
    public let lifetimeMS: Int64
    private let codes = Mutex([String: Int64]())

    public init(lifetimeMS: Int64 = 5 * 60_000) {
        self.lifetimeMS = lifetimeMS
    }

    /// A new code and when it expires.
    public func issue(nowMS: Int64) -> (code: String, expiresMS: Int64) {
        let code = PanelToken.random(bytes: 24)
        let expires = nowMS + lifetimeMS
        codes.withLock { codes in
            codes = codes.filter { $0.value > nowMS }
            codes[code] = expires
        }
        return (code, expires)
    }

    /// Uses a code up; true when it was issued, unused and not expired.
    public func redeem(_ code: String, nowMS: Int64) -> Bool {
        codes.withLock { codes in
            guard let expires = codes.removeValue(forKey: code) else { return false }
            return expires > nowMS
        }
    }
}
