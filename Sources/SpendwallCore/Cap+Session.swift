/// The cap a `spendwall run` session's budget becomes: it covers that session's calls only,
/// for the session's whole life.
extension Cap {
    /// The name of a session's own cap: `session:ID`.
    public static func sessionCapName(_ sessionID: String) -> String { "session:" + sessionID }

    /// The session id a cap name belongs to, when it is a session's own cap.
    public static func sessionID(ofCapName name: String) -> String? {
        name.hasPrefix("session:") ? String(name.dropFirst("session:".count)) : nil
    }

    /// A session's budget as a cap: `block` at the limit, a warning at 80%. Its window is as long
    /// as windows go (3650 days), so nothing the session spends ever drops out of it.
    public static func session(_ sessionID: String, limitNanoUSD: NanoUSD?, limitTokens: Int64?) -> Cap {
        Cap(
            name: sessionCapName(sessionID), scope: .session(.exact(sessionID)),
            window: .rolling(milliseconds: 3650 * 86_400_000), limitNanoUSD: limitNanoUSD, limitTokens: limitTokens,
            action: .block, warnAt: 0.8)
    }
}
