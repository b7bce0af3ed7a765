import SpendwallCore

/// The ledger rows team mode ships to the team database, read in id order after the
/// "shipped up to" mark kept in the ledger itself (so shipping resumes where it stopped).
public protocol ShippingSource: Sendable {
    /// The id of the last row shipped.
    func shippedMark() async throws -> Int64
    /// Up to `limit` rows after `id`, oldest first, each with its ledger id.
    func rows(after id: Int64, limit: Int) async throws -> [(id: Int64, event: SpendEvent)]
    /// Moves the mark from `from` to `to`; false when the mark moved meanwhile (a shipped row
    /// was replaced), so the caller reads again from the new mark.
    func moveShippedMark(from: Int64, to: Int64, atMS: Int64) async throws -> Bool
    /// Rows not shipped yet, and the time of the oldest.
    func shippingBacklog() async throws -> ShippingBacklog
}

/// How far behind shipping is.
public struct ShippingBacklog: Sendable, Hashable {
    public var shippedID: Int64
    public var lastID: Int64
    public var rows: Int64
    public var oldestUnshippedMS: Int64?
    /// When the mark last moved.
    public var shippedAtMS: Int64?

    public init(shippedID: Int64, lastID: Int64, rows: Int64, oldestUnshippedMS: Int64?, shippedAtMS: Int64?) {
        self.shippedID = shippedID
        self.lastID = lastID
        self.rows = rows
        self.oldestUnshippedMS = oldestUnshippedMS
        self.shippedAtMS = shippedAtMS
    }
}
