import Foundation
import Logging
import ServiceLifecycle
import SpendwallCore
import SpendwallLedger
import SpendwallPolicy

/// Charges reservations whose report never came (written as `unreported` at their reserved
/// cost), and at a clean stop saves the ones still in flight so the next start holds them again.
struct ReservationKeeper: Service {
    let engine: PolicyEngine
    let writer: LedgerWriter
    let logger: Logger

    func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            await expire()
        }
        let live = engine.inFlight()
        var bodies: [String: String] = [:]
        let encoder = JSONEncoder()
        for reservation in live {
            if let data = try? encoder.encode(SavedReservation(reservation)) {
                bodies[reservation.id] = String(decoding: data, as: UTF8.self)
            }
        }
        do {
            try await writer.store.savePendingReservations(bodies)
            if !live.isEmpty { logger.info("saved \(live.count) reservations in flight for the next start") }
        } catch {
            logger.error("could not save \(live.count) reservations in flight: \(error)")
        }
    }

    func expire() async {
        for r in engine.expireReservations() {
            logger.notice(
                "reservation \(r.id) (\(r.attributes.model)) was never reported; charged \(Money.format(r.reservedNanoUSD)) as unreported"
            )
            writer.submit(
                SpendEvent(
                    requestID: r.id, timeMS: r.expiresAtMS, path: r.path, provider: r.attributes.provider,
                    model: r.attributes.model, agent: r.attributes.agent, app: r.peer.app, peerPID: r.peer.pid,
                    peerUID: r.peer.uid, peerExe: r.peer.exe, peerScript: r.peer.script, session: r.attributes.session,
                    tags: r.attributes.tags, costNanoUSD: r.reservedNanoUSD, reservedNanoUSD: r.reservedNanoUSD,
                    priced: r.priced, outcome: .unreported, reservationID: r.id))
        }
    }

    /// Loads the reservations saved at the last clean stop back into the engine.
    static func restore(engine: PolicyEngine, store: any LedgerStore, logger: Logger) async throws {
        let saved = try await store.takePendingReservations()
        let decoder = JSONDecoder()
        let reservations = saved.values.compactMap {
            try? decoder.decode(SavedReservation.self, from: Data($0.utf8)).reservation
        }
        engine.restore(reservations)
        if !reservations.isEmpty {
            logger.info("restored \(reservations.count) reservations in flight at the last stop")
        }
    }
}
