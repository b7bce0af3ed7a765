import Foundation
import NIOCore
import NIOHTTP1
import SpendwallAlerts
import SpendwallCore
import SpendwallLedger
import SpendwallStripe

/// The socket API's routes for alerts (`/v1/alerts…`) and reconciliation (`/v1/reconcile…`).
struct IntegrationsAPI: Sendable {
    let dispatcher: AlertDispatcher
    let store: any IntegrationStore
    let reconciler: Reconciler
    let clock: any WallClock

    /// The reply for a path this owns, or nil.
    func reply(to request: APIRequest) -> APIReply? {
        let path = request.path
        switch (request.method, path) {
        case (.GET, "/v1/alerts"): return .later { await list(request) }
        case (.POST, "/v1/alerts/test"): return .later { await test(request) }
        case (.POST, let p) where p.hasPrefix("/v1/alerts/") && p.hasSuffix("/retry"):
            let id = String(p.dropFirst("/v1/alerts/".count).dropLast("/retry".count))
            return .later { await retry(id) }
        case (.GET, "/v1/reconcile"): return .later { await reconcile(request) }
        case (.POST, "/v1/reconcile/import"): return .later { await importExport(request) }
        case (_, "/v1/alerts"), (_, "/v1/reconcile"):
            return .now(.error(SpendwallError(.methodNotAllowed, "\(path) takes GET"), status: .methodNotAllowed))
        case (_, "/v1/alerts/test"), (_, "/v1/reconcile/import"):
            return .now(.error(SpendwallError(.methodNotAllowed, "\(path) takes POST"), status: .methodNotAllowed))
        case (_, let p) where p.hasPrefix("/v1/alerts/") && p.hasSuffix("/retry"):
            return .now(.error(SpendwallError(.methodNotAllowed, "\(path) takes POST"), status: .methodNotAllowed))
        default: return nil
        }
    }

    struct DeadLetterJSON: Encodable {
        var id: Int64
        var created_ms: Int64
        var transport: String
        var kind: String
        var attempts: Int
        var last_error: String
        var status: String
        var retried_ms: Int64?
        var summary: String

        init(_ d: DeadLetter) {
            id = d.id
            created_ms = d.createdMS
            transport = d.transport
            kind = d.kind
            attempts = d.attempts
            last_error = d.lastError
            status = d.status.rawValue
            retried_ms = d.retriedMS
            summary = Alert(kind: d.kind, event: d.event).title
        }
    }

    struct ListJSON: Encodable {
        struct Transport: Encodable {
            var name: String
            var kind: String
        }
        struct Counts: Encodable {
            var delivered: Int
            var retried: Int
            var dead_lettered: Int
            var suppressed: Int
        }
        var transports: [Transport]
        var counts: Counts
        var dead_letters: [DeadLetterJSON]
    }

    func list(_ request: APIRequest) async -> APIResponse {
        let statusText = request.query["status"] ?? "dead"
        let status: DeadLetter.Status?
        switch statusText {
        case "all": status = nil
        case "dead", "retried": status = DeadLetter.Status(rawValue: statusText)
        default: return .badRequest("status must be dead, retried or all, not \"\(statusText)\"")
        }
        let limit = request.query["limit"].flatMap(Int.init) ?? 100
        guard (1...10_000).contains(limit) else { return .badRequest("limit must be 1 to 10000") }
        do {
            let letters = try await store.deadLetters(status: status, limit: limit)
            let c = dispatcher.counts
            return .json(
                ListJSON(
                    transports: dispatcher.transportNames.map { .init(name: $0.name, kind: $0.kind) },
                    counts: .init(
                        delivered: c.delivered, retried: c.retried, dead_lettered: c.deadLettered,
                        suppressed: c.suppressed),
                    dead_letters: letters.map(DeadLetterJSON.init)))
        } catch {
            return .error(SocketAPI.spendwallError(error), status: .internalServerError)
        }
    }

    struct DeliveryJSON: Encodable {
        var delivered: Bool
        var transport: String
        var id: Int64?
    }

    static let deliveryFailed = SpendwallError.Code("alert_delivery_failed")

    func test(_ request: APIRequest) async -> APIResponse {
        struct Body: Decodable { var transport: String }
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(request.body.readableBytesView)) else {
            return .badRequest("send {\"transport\": NAME}, a transport named in alerts.toml")
        }
        let event = AlertTestEvent(
            id: 0, kind: "AlertTest", time_ms: clock.nowMS(),
            data: .init(message: "A test from `spendwall alerts test \(body.transport)`: this transport works."))
        let json = String(decoding: (try? JSONEncoder().encode(event)) ?? Data(), as: UTF8.self)
        return await deliver(Alert(kind: "AlertTest", event: json), transport: body.transport, id: nil)
    }

    func retry(_ idText: String) async -> APIResponse {
        guard let id = Int64(idText) else {
            return .badRequest("a dead letter id is a number (see `spendwall alerts ls`)")
        }
        do {
            guard let letter = try await store.deadLetter(id: id) else {
                return .error(
                    SpendwallError(.notFound, "no dead letter \(id) (see `spendwall alerts ls`)"), status: .notFound)
            }
            guard letter.status == .dead else {
                return .error(
                    SpendwallError(.conflict, "dead letter \(id) was already delivered by a retry"), status: .conflict)
            }
            let response = await deliver(
                Alert(kind: letter.kind, event: letter.event), transport: letter.transport, id: id)
            if response.status == .ok { try await store.markRetried(id: id, atMS: clock.nowMS()) }
            return response
        } catch {
            return .error(SocketAPI.spendwallError(error), status: .internalServerError)
        }
    }

    private func deliver(_ alert: Alert, transport: String, id: Int64?) async -> APIResponse {
        do {
            if let failure = try await dispatcher.deliverOnce(alert, transport: transport) {
                return .error(
                    SpendwallError(
                        Self.deliveryFailed,
                        "\(transport) did not take the alert: \(failure.reason)"
                            + (failure.retryable ? " (temporary; try again)" : " (check the transport in alerts.toml)")),
                    status: .badGateway)
            }
            return .json(DeliveryJSON(delivered: true, transport: transport, id: id))
        } catch {
            return .error(error, status: .notFound)
        }
    }

    struct ReconcileJSON: Encodable {
        var period: String
        var rows: [Reconciler.Group]
    }

    func reconcile(_ request: APIRequest) async -> APIResponse {
        let period =
            request.query["period"].flatMap { $0.isEmpty ? nil : $0 }
            ?? BillingPeriod(unixSeconds: clock.nowMS() / 1000)?.description ?? "1970-01"
        do {
            return .json(ReconcileJSON(period: period, rows: try await reconciler.report(period: period)))
        } catch let error as SpendwallError {
            return .error(error, status: error.code == .badRequest ? .badRequest : .internalServerError)
        } catch {
            return .error(SocketAPI.spendwallError(error), status: .internalServerError)
        }
    }

    struct ImportJSON: Encodable {
        var reference: String
        var lines: Int
        var rows: [Reconciler.Group]
    }

    func importExport(_ request: APIRequest) async -> APIResponse {
        struct Body: Decodable {
            var content: String
            var reference: String?
            var provider: String?
        }
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(request.body.readableBytesView)) else {
            return .badRequest(
                "send {\"content\": the export's text, \"reference\"?: a name, \"provider\"?: openai|anthropic}")
        }
        if let p = body.provider, !["openai", "anthropic"].contains(p) {
            return .badRequest("provider must be openai or anthropic, not \"\(p)\"")
        }
        let reference = body.reference ?? "import"
        let lines: [CostLine]
        do {
            lines = try CostExport.parse(body.content, reference: reference, provider: body.provider)
        } catch {
            return .error(SpendwallError(Self.unsupportedExport, error.message), status: .badRequest)
        }
        guard !lines.isEmpty else {
            return .error(SpendwallError(Self.unsupportedExport, "the export holds no costs"), status: .badRequest)
        }
        do {
            return .json(ImportJSON(reference: reference, lines: lines.count, rows: try await reconciler.ingest(lines)))
        } catch {
            return .error(SocketAPI.spendwallError(error), status: .internalServerError)
        }
    }

    static let unsupportedExport = SpendwallError.Code("unsupported_export")
}

struct AlertTestEvent: Encodable {
    struct Data: Encodable { var message: String }
    var id: Int64
    var kind: String
    var time_ms: Int64
    var data: Data
}
