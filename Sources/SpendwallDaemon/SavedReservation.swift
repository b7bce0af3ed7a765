import SpendwallCore
import SpendwallPolicy
import SpendwallPricing

/// A reservation as saved across a clean restart.
struct SavedReservation: Codable {
    var id: String
    var provider: String
    var model: String
    var agent: String?
    var app: String
    var session: String?
    var tags: [String: String]
    var pid: Int32?
    var uid: UInt32?
    var gid: UInt32?
    var exe: String?
    var script: String?
    var path: String
    var strict: Bool
    var inputTokens: Int64
    var maxOutputTokens: Int64
    var price: [Int64]
    /// The whole price (tiers, 1-hour writes, batch share); absent in files older than it.
    var fullPrice: ModelPrice?
    var batch: Bool?
    var priceSource: String
    var priced: Bool
    var reservedNanoUSD: Int64
    var reservedTokens: Int64
    var createdAtMS: Int64
    var expiresAtMS: Int64

    init(_ r: Reservation) {
        id = r.id
        provider = r.attributes.provider.rawValue
        model = r.attributes.model
        agent = r.attributes.agent
        app = r.attributes.app
        session = r.attributes.session
        tags = r.attributes.tags
        pid = r.peer.pid
        uid = r.peer.uid
        gid = r.peer.gid
        exe = r.peer.exe
        script = r.peer.script
        path = r.path.rawValue
        strict = r.strict
        inputTokens = r.estimate.inputTokens
        maxOutputTokens = r.estimate.maxOutputTokens
        price = [
            r.price.inputPerMillion, r.price.outputPerMillion, r.price.cacheReadPerMillion,
            r.price.cacheWritePerMillion,
        ]
        fullPrice = r.price
        batch = r.estimate.batch ? true : nil
        priceSource = r.price.source
        priced = r.priced
        reservedNanoUSD = r.reservedNanoUSD
        reservedTokens = r.reservedTokens
        createdAtMS = r.createdAtMS
        expiresAtMS = r.expiresAtMS
    }

    var reservation: Reservation? {
        guard let provider = Provider(rawValue: provider), let path = SpendPath(rawValue: path), price.count == 4 else {
            return nil
        }
        return Reservation(
            id: id,
            attributes: CallAttributes(
                provider: provider, model: model, agent: agent, app: app, session: session, tags: tags),
            peer: PeerIdentity(pid: pid, uid: uid, gid: gid, exe: exe, script: script, app: app), path: path,
            strict: strict,
            estimate: CallEstimate(
                inputTokens: inputTokens, maxOutputTokens: maxOutputTokens, batch: batch ?? false),
            price: fullPrice
                ?? ModelPrice(
                    inputPerMillion: price[0], outputPerMillion: price[1], cacheReadPerMillion: price[2],
                    cacheWritePerMillion: price[3], source: priceSource),
            priced: priced, reservedNanoUSD: reservedNanoUSD, reservedTokens: reservedTokens, createdAtMS: createdAtMS,
            expiresAtMS: expiresAtMS, holds: [])
    }
}
