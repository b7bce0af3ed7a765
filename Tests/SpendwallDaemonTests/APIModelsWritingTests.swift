import Foundation
import SpendwallCore
import Testing

@testable import SpendwallDaemon
@testable import SpendwallPolicy

/// The answers sent on every call are written with `JSONWriter` instead of `JSONEncoder`. Each
/// must read back exactly as `JSONEncoder`'s output for the same value — with every field set,
/// so a field added to a model and forgotten in its writer fails here.
@Suite struct APIModelsWritingTests {
    static let cap: CapJSON = {
        let status = CapStatus(
            cap: Cap(
                name: "team \"daily\"", scope: .tag(key: "customer", value: .exact("acme")),
                window: .rolling(milliseconds: 86_400_000),
                limitNanoUSD: 1_000_000_000, limitTokens: 50_000, action: .block, warnAt: 0.8),
            key: "acme", spentNanoUSD: 900_000_000, reservedNanoUSD: 150_000_000, spentTokens: 40_000,
            reservedTokens: 2_000, resetsAtMS: 1_764_800_000_000)
        var json = CapJSON(status)
        json.team = true  // a team cap's marker (team mode)
        return json
    }()

    static let error = ErrorJSON(
        code: "cap_exceeded", message: "cap 'daily' (1d) would be exceeded:\n\tspent $0.90", cap: cap,
        file: "caps.toml", line: 9, fail_closed: true)

    static let check = CheckAnswer(
        decision: "block", reservation_id: "r_1", reserved_nanousd: 5_002_500, priced: false,
        expires_at_ms: 1_764_800_000_000, reason: "would exceed é 😀", cap: cap, remaining_nanousd: 0, error: error,
        approval_id: "a_1")

    static let report = ReportAnswer(request_id: "r_1", cost_nanousd: 123_456, priced: true, duplicate: false)

    func expectSame<T: Encodable & JSONWritable>(_ value: T) throws {
        let written = try JSONSerialization.jsonObject(with: Data(value.jsonBytes)) as? NSDictionary
        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value)) as? NSDictionary
        #expect(written != nil)
        #expect(written == encoded, "\(String(decoding: value.jsonBytes, as: UTF8.self))")
    }

    /// Every stored property of the fixture has a value: none is left out by being nil.
    func expectFullyPopulated(_ value: Any) {
        for child in Mirror(reflecting: value).children {
            let inner = Mirror(reflecting: child.value)
            if inner.displayStyle == .optional {
                #expect(!inner.children.isEmpty, "fixture leaves \(child.label ?? "?") nil")
            }
        }
    }

    @Test func checkAnswers() throws {
        expectFullyPopulated(Self.check)
        try expectSame(Self.check)
        var allowed = Self.check
        (allowed.cap, allowed.error, allowed.reason, allowed.approval_id) = (nil, nil, nil, nil)
        try expectSame(allowed)
    }

    @Test func reportAnswers() throws {
        expectFullyPopulated(Self.report)
        try expectSame(Self.report)
    }

    @Test func errorBodiesAndCaps() throws {
        expectFullyPopulated(Self.error)
        expectFullyPopulated(Self.cap)
        try expectSame(ErrorBody(error: Self.error))
        try expectSame(Self.cap)
        try expectSame(ErrorBody(error: ErrorJSON(code: "bad_request", message: "", cap: nil, file: nil, line: nil)))
    }
}
