import SpendwallCore

/// Budget an agent set aside for a planned piece of work (the MCP server's
/// `request_preapproval`). It holds `amount` in every cap that covers the agent; the agent's
/// later calls draw it down instead of reserving again, and what is left is released when it
/// expires or the agent releases it.
public struct Preapproval: Sendable, Hashable {
    public var id: String
    public var attributes: CallAttributes
    public var peer: PeerIdentity
    public var reason: String
    public var amountNanoUSD: NanoUSD
    /// Not yet promised to a call: what new calls can still draw.
    public var availableNanoUSD: NanoUSD
    /// Still reserved in the caps: `available` plus what calls in flight were promised.
    public var heldNanoUSD: NanoUSD
    /// The real cost of the calls settled under it.
    public var spentNanoUSD: NanoUSD = 0
    public var calls: Int = 0
    public var inFlight: Int = 0
    public var createdAtMS: Int64
    public var expiresAtMS: Int64
    public var holds: [CapHold]
    /// Released or expired: no new call draws from it.
    public var closed = false

    public init(
        id: String, attributes: CallAttributes, peer: PeerIdentity, reason: String, amountNanoUSD: NanoUSD,
        createdAtMS: Int64, expiresAtMS: Int64, holds: [CapHold]
    ) {
        self.id = id
        self.attributes = attributes
        self.peer = peer
        self.reason = reason
        self.amountNanoUSD = amountNanoUSD
        self.availableNanoUSD = amountNanoUSD
        self.heldNanoUSD = amountNanoUSD
        self.createdAtMS = createdAtMS
        self.expiresAtMS = expiresAtMS
        self.holds = holds
    }

    /// What is left of it: the amount less the real cost of the calls made under it.
    public var remainingNanoUSD: NanoUSD { closed ? 0 : max(0, amountNanoUSD - spentNanoUSD) }
}

/// The policy engine's answer to a pre-approval request.
public enum PreapprovalDecision: Sendable {
    case granted(Preapproval)
    case block(CapStatus, reason: String)
    case killed(KillScope)
    case approvalRequired(CapStatus, reason: String)
}
