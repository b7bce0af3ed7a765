import GRDB
import Testing

@testable import SpendwallCore
@testable import SpendwallLedger

/// The "shipped up to" mark of team mode (migration 7-team-shipping).
@Suite struct ShippingTests {
    func row(_ id: String, _ outcome: Outcome, cost: NanoUSD) -> SpendEvent {
        SpendEvent(
            requestID: id, timeMS: 1_000, path: .sdk, provider: .openai, model: "m", costNanoUSD: cost,
            outcome: outcome)
    }

    @Test func shippingResumesFromTheMarkAndShipsAReplacedRowAgain() async throws {
        let ledger = try SQLiteLedger(writer: DatabaseQueue())
        _ = try ledger.append([row("a", .ok, cost: 1), row("b", .unreported, cost: 5)])
        #expect(try await ledger.shippedMark() == 0)
        let rows = try await ledger.rows(after: 0, limit: 10)
        #expect(rows.map(\.event.requestID) == ["a", "b"])
        #expect(try await ledger.shippingBacklog().rows == 2)
        #expect(try await ledger.moveShippedMark(from: 0, to: rows[1].id, atMS: 5))
        #expect(try await ledger.shippingBacklog().rows == 0)

        // The late report replaces b's placeholder: the mark moves back and b ships again.
        _ = try ledger.append([row("b", .ok, cost: 3)])
        let mark = try await ledger.shippedMark()
        let again = try await ledger.rows(after: mark, limit: 10)
        #expect(again.map(\.event.requestID) == ["b"])
        #expect(again.first?.event.costNanoUSD == 3)
        // A shipper holding the old mark cannot move it past the replaced row.
        #expect(try await ledger.moveShippedMark(from: rows[1].id, to: 99, atMS: 6) == false)
    }
}
