import Crypto
import Foundation

/// Verifies Stripe's `Stripe-Signature` webhook header, as Stripe specifies it: the header is
/// `t=TIMESTAMP,v1=HEX[,v1=HEX...][,v0=...]`; each `v1` is the hex HMAC-SHA256, keyed with the
/// endpoint's signing secret, of `"\(t).\(raw body)"`. Every `v1` is tried (Stripe sends more
/// than one while a secret is being rolled), compared in constant time, and the timestamp must
/// lie within `tolerance` seconds of now on either side.
///
/// Pure: the caller passes the clock reading, so tests move time instead of waiting.
public struct StripeSignature: Sendable {
    /// Why a delivery was refused. Each has a stable code the webhook answers with.
    public enum Failure: Error, Sendable, Equatable {
        case missingHeader
        case malformedHeader(String)
        case noV1Signature
        case invalidTimestamp(String)
        case timestampTooOld(ageSeconds: Int64)
        case timestampInFuture(aheadSeconds: Int64)
        case signatureMismatch

        /// The stable error code (the `code` of the webhook's JSON error).
        public var code: String {
            switch self {
            case .missingHeader: "missing_signature"
            case .malformedHeader: "malformed_signature"
            case .noV1Signature: "no_v1_signature"
            case .invalidTimestamp: "invalid_timestamp"
            case .timestampTooOld: "timestamp_too_old"
            case .timestampInFuture: "timestamp_in_future"
            case .signatureMismatch: "signature_mismatch"
            }
        }

        /// What happened and what to check, for people.
        public var message: String {
            switch self {
            case .missingHeader: "the request has no Stripe-Signature header"
            case .malformedHeader(let why): "the Stripe-Signature header is malformed: \(why)"
            case .noV1Signature: "the Stripe-Signature header carries no v1 signature"
            case .invalidTimestamp(let why): "the Stripe-Signature timestamp is invalid: \(why)"
            case .timestampTooOld(let age):
                "the Stripe-Signature timestamp is \(age) s old, past the tolerance (a replay, or a clock that is off)"
            case .timestampInFuture(let ahead):
                "the Stripe-Signature timestamp is \(ahead) s in the future, past the tolerance (check this machine's clock)"
            case .signatureMismatch:
                "no v1 signature matches the body (wrong signing secret in [stripe], or the body was altered)"
            }
        }
    }

    /// The parts of a header.
    public struct Header: Sendable, Equatable {
        public var timestamp: Int64
        /// Every `v1` signature, decoded from hex (32 bytes each).
        public var signatures: [[UInt8]]
    }

    /// Stripe's default tolerance: five minutes.
    public static let defaultTolerance: Int64 = 300

    public var secret: String
    public var toleranceSeconds: Int64

    public init(secret: String, toleranceSeconds: Int64 = StripeSignature.defaultTolerance) {
        self.secret = secret
        self.toleranceSeconds = max(0, toleranceSeconds)
    }

    /// Parses a header. Unknown schemes (`v0`, future ones) are ignored, as Stripe asks;
    /// a `v1` that is not 64 hex digits cannot match and is dropped.
    public static func parse(_ header: String?) throws(Failure) -> Header {
        guard let header else { throw .missingHeader }
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw .missingHeader }
        var timestamp: Int64?
        var signatures: [[UInt8]] = []
        for element in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let pair = element.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2 else { throw .malformedHeader("\"\(element.prefix(40))\" is not key=value") }
            let key = pair[0].trimmingCharacters(in: .whitespaces)
            let value = pair[1].trimmingCharacters(in: .whitespaces)
            switch key {
            case "t":
                guard timestamp == nil else { throw .malformedHeader("more than one t=") }
                timestamp = try parseTimestamp(value)
            case "v1":
                if let bytes = hexBytes(value), bytes.count == SHA256.byteCount { signatures.append(bytes) }
            default:
                continue
            }
        }
        guard let timestamp else { throw .malformedHeader("no t= timestamp") }
        guard !signatures.isEmpty else { throw .noV1Signature }
        return Header(timestamp: timestamp, signatures: signatures)
    }

    /// Digits only, at most what fits in Int64, and positive: `-5`, `+5`, `1e9`, `0x10` and
    /// values past Int64 are refused rather than wrapped or clamped.
    static func parseTimestamp(_ text: String) throws(Failure) -> Int64 {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw .invalidTimestamp("\"\(text.prefix(24))\" is not a non-negative whole number of seconds")
        }
        guard let value = Int64(text) else { throw .invalidTimestamp("\(text.prefix(24)) is out of range") }
        guard value > 0 else { throw .invalidTimestamp("0 is not a time Stripe signs") }
        return value
    }

    /// Verifies `header` over the raw `payload` at `nowSeconds` (Unix time). Returns the
    /// signed timestamp.
    @discardableResult
    public func verify(payload: some DataProtocol, header: String?, nowSeconds: Int64) throws(Failure) -> Int64 {
        let parsed = try Self.parse(header)
        // Saturating: neither a huge timestamp nor a negative clock can wrap the difference.
        let (difference, overflow) = nowSeconds.subtractingReportingOverflow(parsed.timestamp)
        if overflow || difference > toleranceSeconds {
            throw .timestampTooOld(ageSeconds: overflow ? Int64.max : difference)
        }
        if difference < -toleranceSeconds {
            throw .timestampInFuture(aheadSeconds: difference == Int64.min ? Int64.max : -difference)
        }
        let key = SymmetricKey(data: Data(secret.utf8))
        var signed = Data("\(parsed.timestamp).".utf8)
        signed.append(contentsOf: payload)
        var matched = false
        for signature in parsed.signatures {
            // isValidAuthenticationCode compares in constant time; every v1 is checked.
            if HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signed, using: key) {
                matched = true
            }
        }
        guard matched else { throw .signatureMismatch }
        return parsed.timestamp
    }

    /// The header Stripe would send for `payload` at `timestamp` (for tests and `alerts test`).
    public func header(for payload: some DataProtocol, timestamp: Int64) -> String {
        var signed = Data("\(timestamp).".utf8)
        signed.append(contentsOf: payload)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Data(secret.utf8)))
        return "t=\(timestamp),v1=" + Self.hex(Array(mac))
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            case 0x41...0x46: c - 0x41 + 10
            default: nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
