import SpendwallCore

/// How the policy engine decides team caps: with a team database configured, a team cap's
/// calls draw on this machine's budget lease instead of the cap's whole limit.
public struct TeamPolicy: Sendable, Hashable {
    /// What to do once a lease is spent and the team database cannot be reached.
    public enum Offline: String, Sendable, Hashable {
        /// Decide the cap against its limit and this machine's own spend.
        case localOnly = "local-only"
        /// Block the cap's calls.
        case block
    }

    public var offline: Offline

    public init(offline: Offline = .block) {
        self.offline = offline
    }
}

/// One budget row of the team database: a team cap, a budget key and the start of the team
/// period (see ``CapWindow/teamPeriodStart(nowMS:)``).
public struct LeaseKey: Sendable, Hashable, CustomStringConvertible {
    public var cap: String
    public var key: String
    public var periodMS: Int64

    public init(cap: String, key: String, periodMS: Int64) {
        self.cap = cap
        self.key = key
        self.periodMS = periodMS
    }

    public var description: String { "\(cap)[\(key)]@\(periodMS)" }
}

/// This machine's lease on one team budget: what it was granted, what its calls used and hold,
/// and what the team database has been told.
public struct Lease: Sendable, Hashable {
    public var limitNanoUSD: NanoUSD
    /// Taken from the team budget this period (cumulative, as the team database has it).
    public var grantedNanoUSD: NanoUSD = 0
    /// Given back (cumulative, as the team database has it).
    public var returnedNanoUSD: NanoUSD = 0
    /// Spend of this machine's calls in this period (cumulative; the local truth).
    public var usedNanoUSD: NanoUSD = 0
    /// Held by calls in flight.
    public var reservedNanoUSD: NanoUSD = 0
    /// The part of `used` the team database has recorded.
    public var reportedNanoUSD: NanoUSD = 0
    /// The lease may be drawn on until then (local clock); 0 before the first grant.
    public var expiresAtMS: Int64 = 0
    /// The team budget left unleased when last seen (spent and other machines' leases taken off).
    public var teamUnleasedNanoUSD: NanoUSD?
    /// The team database has answered for this lease at least once (its `used` is adopted).
    public var synced = false
    /// When a check last drew on, or wanted, this lease.
    public var wantedAtMS: Int64 = 0

    public init(limitNanoUSD: NanoUSD) {
        self.limitNanoUSD = limitNanoUSD
    }

    /// What calls may still draw on: granted, less returned, used and held.
    public var availableNanoUSD: NanoUSD { grantedNanoUSD - returnedNanoUSD - usedNanoUSD - reservedNanoUSD }

    /// What the team database counts as leased to this machine.
    public var outstandingNanoUSD: NanoUSD { max(0, grantedNanoUSD - returnedNanoUSD - usedNanoUSD) }
}

/// What the team database answered for one lease.
public struct LeaseGrant: Sendable, Hashable {
    public var grantedNanoUSD: NanoUSD
    public var returnedNanoUSD: NanoUSD
    public var usedNanoUSD: NanoUSD
    public var expiresAtMS: Int64
    public var teamUnleasedNanoUSD: NanoUSD

    public init(
        grantedNanoUSD: NanoUSD, returnedNanoUSD: NanoUSD, usedNanoUSD: NanoUSD, expiresAtMS: Int64,
        teamUnleasedNanoUSD: NanoUSD
    ) {
        self.grantedNanoUSD = grantedNanoUSD
        self.returnedNanoUSD = returnedNanoUSD
        self.usedNanoUSD = usedNanoUSD
        self.expiresAtMS = expiresAtMS
        self.teamUnleasedNanoUSD = teamUnleasedNanoUSD
    }
}

/// Every lease this machine holds, and whether the team database answers. Plain value code
/// inside the ``PolicyEngine``'s lock.
struct TeamLeases {
    var leases: [LeaseKey: Lease] = [:]
    var online = false

    /// Records the team database's answer. `sentUsed` is the `used` that was sent with the
    /// request; the first answer for a lease adopts the spend recorded before this start.
    mutating func apply(_ grant: LeaseGrant, for key: LeaseKey, sentUsed: NanoUSD, limit: NanoUSD) {
        var lease = leases[key] ?? Lease(limitNanoUSD: limit)
        if !lease.synced {
            lease.usedNanoUSD += grant.usedNanoUSD
            lease.reportedNanoUSD = grant.usedNanoUSD
            lease.synced = true
        } else {
            lease.reportedNanoUSD = max(lease.reportedNanoUSD, min(sentUsed, grant.usedNanoUSD))
        }
        lease.grantedNanoUSD = grant.grantedNanoUSD
        lease.returnedNanoUSD = grant.returnedNanoUSD
        lease.expiresAtMS = grant.expiresAtMS
        lease.teamUnleasedNanoUSD = grant.teamUnleasedNanoUSD
        leases[key] = lease
    }
}
