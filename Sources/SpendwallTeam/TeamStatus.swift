import Synchronization

/// What team mode's services report about themselves, for `/v1/team`, `doctor` and the bench.
public final class TeamStatus: Sendable {
    public struct Snapshot: Sendable {
        public var schemaReady = false
        public var leaseRoundTrips: Int64 = 0
        public var leaseError: String?
        public var shipRoundTrips: Int64 = 0
        public var shippedRows: Int64 = 0
        public var shipError: String?
        public var lastShipMS: Int64?
    }

    private let state = Mutex(Snapshot())

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0 } }

    func update(_ body: (inout Snapshot) -> Void) { state.withLock { body(&$0) } }
}
