import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SpendwallConfig
import SpendwallCore
import SpendwallLedger
import SpendwallStripe

/// `POST /webhooks/stripe` on the loopback listener: verifies the Stripe-Signature header,
/// refuses replays of an event id already stored, keeps the raw event in `stripe_events`, and
/// reconciles invoice events.
struct StripeWebhook: Sendable {
    static let path = "/webhooks/stripe"

    let live: LiveStripeSettings
    let store: any IntegrationStore
    let reconciler: Reconciler?
    let clock: any WallClock
    let logger: Logger

    func handle(method: HTTPMethod, headers: HTTPHeaders, body: ByteBuffer) async -> LoopbackResponse {
        guard method == .POST else {
            return .error(SpendwallError(.methodNotAllowed, "\(Self.path) takes POST"), status: .methodNotAllowed)
        }
        guard let settings = live.current, let secret = settings.secret else {
            return .error(
                SpendwallError(
                    Self.notConfigured,
                    "Stripe webhooks are not set up: add [stripe] with secret_env (or secret_file) to alerts.toml"),
                status: .serviceUnavailable)
        }
        let payload = Array(body.readableBytesView)
        let verifier = StripeSignature(secret: secret.value, toleranceSeconds: settings.toleranceSeconds)
        do {
            try verifier.verify(
                payload: payload, header: headers.first(name: "stripe-signature"), nowSeconds: clock.nowMS() / 1000)
        } catch {
            logger.warning("stripe webhook refused: \(error.code)")
            return .error(SpendwallError(.init(error.code), error.message), status: .badRequest)
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any],
            let id = object["id"] as? String, !id.isEmpty, let type = object["type"] as? String
        else {
            return .error(
                SpendwallError(.badRequest, "the body is not a Stripe event (a JSON object with id and type)"),
                status: .badRequest)
        }
        let event = StoredStripeEvent(
            id: id, type: type, created: InvoiceMappingInt.int(object["created"]),
            livemode: object["livemode"] as? Bool, receivedMS: clock.nowMS(),
            payload: String(decoding: payload, as: UTF8.self))
        do {
            guard try await store.insertStripeEvent(event) else {
                // Stripe redelivers; a 2xx stops it retrying. Nothing is processed twice.
                return .json(
                    .json(
                        WebhookAnswer(
                            received: true, processed: false, id: id, reason: "duplicate_event",
                            message: "event \(id) was received before; it is not processed again")))
            }
        } catch {
            return .error(
                SpendwallError(.unavailable, "cannot store the event: \(error)"), status: .internalServerError)
        }
        var answer = WebhookAnswer(received: true, processed: true, id: id)
        if let reconciler {
            let (lines, skipped) = (live.current ?? StripeSettings()).mapping.lines(ofEvent: object)
            answer.skipped = skipped.isEmpty ? nil : skipped
            if !lines.isEmpty {
                do {
                    answer.reconciled = try await reconciler.ingest(lines)
                } catch {
                    logger.error("stripe event \(id): reconciliation failed: \(error)")
                    answer.reason = "reconcile_failed"
                    answer.message = "\(error)"
                }
            }
        }
        return .json(.json(answer))
    }

    static let notConfigured = SpendwallError.Code("stripe_not_configured")

    struct WebhookAnswer: Encodable {
        var received: Bool
        var processed: Bool
        var id: String
        var reason: String?
        var message: String?
        var reconciled: [Reconciler.Group]?
        var skipped: [String]?
    }
}

enum InvoiceMappingInt {
    static func int(_ value: Any?) -> Int64? {
        (value as? NSNumber)?.int64Value
    }
}
