import AsyncHTTPClient
import CSpendwallCurl
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SpendwallConfig
import SpendwallCore

/// Delivers one alert, once. Retrying is the ``AlertDispatcher``'s business.
protocol AlertTransport: Sendable {
    var configuration: AlertTransportConfiguration { get }
    /// Nil when delivered.
    func deliver(_ alert: Alert) async -> DeliveryFailure?
}

/// Slack incoming webhooks and generic JSON webhooks: an HTTP POST.
struct HTTPAlertTransport: AlertTransport {
    let configuration: AlertTransportConfiguration
    let client: HTTPClient
    let panelURL: String?
    let clock: any WallClock

    func deliver(_ alert: Alert) async -> DeliveryFailure? {
        let body: [UInt8]
        var request = HTTPClientRequest(url: configuration.url.value)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "user-agent", value: "spendwall-alerts")
        switch configuration.kind {
        case .slack:
            body = AlertMessages.slack(alert, panelURL: panelURL)
        default:
            body = AlertMessages.webhook(alert, transport: configuration.name)
            request.headers.add(name: "x-spendwall-event", value: alert.kind)
            if let secret = configuration.signingSecret {
                request.headers.add(
                    name: configuration.signatureHeader,
                    value: WebhookSignature.header(body: body, secret: secret.value, timestamp: clock.nowMS() / 1000))
            }
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: .milliseconds(configuration.timeoutMS))
            // Read (and drop) the body so the connection can be reused.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return DeliveryFailure.http(status: Int(response.status.code))
        } catch let error as HTTPClientError {
            if [HTTPClientError.invalidURL, .emptyHost, .emptyScheme].contains(error) {
                return DeliveryFailure(reason: "the transport's url is not usable", retryable: false)
            }
            if [HTTPClientError.deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout].contains(error) {
                return .network("timed out after \(configuration.timeoutMS) ms")
            }
            return .network("HTTP client error: \(Self.redacted(error))")
        } catch {
            return .network("could not deliver: \(Self.redacted(error))")
        }
    }

    /// Errors can quote the URL, and a Slack URL is a secret.
    static func redacted(_ error: any Error) -> String {
        let text = "\(error)"
        guard let range = text.range(of: "://") else { return text }
        return String(text[..<range.lowerBound]) + "://…"
    }
}

/// The generic webhook's signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, the
/// scheme Stripe uses, so receivers can reuse a verifier.
public enum WebhookSignature {
    public static func header(body: [UInt8], secret: String, timestamp: Int64) -> String {
        var signed = Array("\(timestamp).".utf8)
        signed += body
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Data(secret.utf8)))
        return "t=\(timestamp),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }
}

/// Email over SMTP through libcurl: STARTTLS (required unless `starttls = false`) and AUTH.
struct EmailAlertTransport: AlertTransport {
    let configuration: AlertTransportConfiguration
    let panelURL: String?
    let clock: any WallClock

    func deliver(_ alert: Alert) async -> DeliveryFailure? {
        let config = configuration
        let message = AlertMessages.email(
            alert, from: config.from ?? "spendwall@localhost", to: config.to, panelURL: panelURL, nowMS: clock.nowMS())
        do {
            return try await NIOThreadPool.singleton.runIfActive { Self.send(message, config) }
        } catch {
            return .network("the mail thread pool is not running: \(error)")
        }
    }

    static func send(_ message: String, _ config: AlertTransportConfiguration) -> DeliveryFailure? {
        var result = sw_smtp_result()
        let recipients = config.to.map { strdup($0) }
        defer { recipients.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = recipients.map { UnsafePointer($0) }
        let bytes = Array(message.utf8)
        let code = pointers.withUnsafeBufferPointer { rcpt in
            bytes.withUnsafeBufferPointer { body in
                body.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) { text in
                    sw_smtp_send(
                        config.url.value, config.username, config.password?.value, config.from ?? "", rcpt.baseAddress,
                        rcpt.count, text, bytes.count, config.requireTLS ? 1 : 0, config.caFile,
                        Int(config.timeoutMS), &result)
                }
            }
        }
        guard code != 0 else { return nil }
        let text = withUnsafeBytes(of: result.error) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return classify(curlCode: Int(code), smtpCode: result.smtp_code, text: text)
    }

    /// libcurl's outcome as a delivery failure: a refused login, a server without STARTTLS, an
    /// untrusted certificate or a 5xx reply will fail again; timeouts, refused connections and
    /// 4xx replies may not.
    static func classify(curlCode: Int, smtpCode: Int, text: String) -> DeliveryFailure {
        switch curlCode {
        case 67: return DeliveryFailure(reason: "SMTP login refused (check username and password)", retryable: false)
        case 64: return DeliveryFailure(reason: "the server does not offer STARTTLS (\(text))", retryable: false)
        case 35, 60, 77:
            return DeliveryFailure(reason: "TLS failed: \(text) (ca_file?)", retryable: false)
        case 3: return DeliveryFailure(reason: "the SMTP url is malformed", retryable: false)
        case 28: return .network("SMTP timed out: \(text)")
        case 6, 7: return .network("cannot reach the SMTP server: \(text)")
        default:
            if smtpCode >= 400 { return .smtp(code: smtpCode, text) }
            return .network("SMTP failed (curl \(curlCode)): \(text)")
        }
    }
}
