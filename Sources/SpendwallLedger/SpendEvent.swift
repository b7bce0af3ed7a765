import SpendwallCore

/// One row of the ledger: a call (or a blocked or unreported one) with who made it, what it
/// used and what it cost.
public struct SpendEvent: Sendable, Hashable {
    /// Unique per call: the reservation id, or the client's id for spooled reports.
    public var requestID: String
    public var timeMS: Int64
    public var path: SpendPath
    public var provider: Provider
    public var model: String
    public var agent: String?
    public var app: String
    public var peerPID: Int32?
    public var peerUID: UInt32?
    public var peerExe: String?
    public var peerScript: String?
    public var session: String?
    public var tags: [String: String]
    public var usage: Usage
    public var costNanoUSD: NanoUSD
    public var reservedNanoUSD: NanoUSD
    public var priced: Bool
    /// The upstream HTTP status, when known.
    public var status: Int?
    public var outcome: Outcome
    public var durationMS: Int64?
    public var reservationID: String?
    /// Some of the usage is an estimate: the provider did not report it (a stream without
    /// usage, or one cut short).
    public var estimated: Bool

    public init(
        requestID: String, timeMS: Int64, path: SpendPath, provider: Provider, model: String,
        agent: String? = nil, app: String = "unknown", peerPID: Int32? = nil, peerUID: UInt32? = nil,
        peerExe: String? = nil, peerScript: String? = nil, session: String? = nil,
        tags: [String: String] = [:], usage: Usage = Usage(), costNanoUSD: NanoUSD = 0,
        reservedNanoUSD: NanoUSD = 0, priced: Bool = true, status: Int? = nil, outcome: Outcome = .ok,
        durationMS: Int64? = nil, reservationID: String? = nil, estimated: Bool = false
    ) {
        self.requestID = requestID
        self.timeMS = timeMS
        self.path = path
        self.provider = provider
        self.model = model
        self.agent = agent
        self.app = app
        self.peerPID = peerPID
        self.peerUID = peerUID
        self.peerExe = peerExe
        self.peerScript = peerScript
        self.session = session
        self.tags = tags
        self.usage = usage
        self.costNanoUSD = costNanoUSD
        self.reservedNanoUSD = reservedNanoUSD
        self.priced = priced
        self.status = status
        self.outcome = outcome
        self.durationMS = durationMS
        self.reservationID = reservationID
        self.estimated = estimated
    }

    /// The attributes caps match on.
    public var attributes: CallAttributes {
        CallAttributes(provider: provider, model: model, agent: agent, app: app, session: session, tags: tags)
    }
}

/// What appending one event did.
public enum AppendResult: Sendable, Hashable {
    /// A new row.
    case inserted
    /// A row with this request id already exists; nothing changed.
    case duplicate(existingCostNanoUSD: NanoUSD)
    /// The row replaced an `unreported` placeholder whose charged cost was this.
    case replacedUnreported(previousCostNanoUSD: NanoUSD)
}
