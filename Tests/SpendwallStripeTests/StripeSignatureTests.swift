import Crypto
import Foundation
import Testing

@testable import SpendwallStripe

@Suite struct StripeSignatureTests {
    let secret = "whsec_test_secret"
    let payload = Array(#"{"id":"evt_1","type":"invoice.paid"}"#.utf8)
    let now: Int64 = 1_790_000_000

    var verifier: StripeSignature { StripeSignature(secret: secret, toleranceSeconds: 300) }

    func sign(_ body: [UInt8], at t: Int64, secret: String? = nil) -> String {
        StripeSignature(secret: secret ?? self.secret).header(for: body, timestamp: t)
    }

    @Test func aCorrectSignaturePasses() throws {
        #expect(try verifier.verify(payload: payload, header: sign(payload, at: now), nowSeconds: now) == now)
    }

    @Test func matchesStripesOwnDefinition() throws {
        // HMAC-SHA256(secret, "t.payload") in lowercase hex, computed independently.
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("\(now).".utf8) + Data(payload), using: SymmetricKey(data: Data(secret.utf8)))
        let hex = mac.map { String(format: "%02x", $0) }.joined()
        #expect(sign(payload, at: now) == "t=\(now),v1=\(hex)")
        try verifier.verify(payload: payload, header: "t=\(now),v1=\(hex.uppercased())", nowSeconds: now)
    }

    @Test func everyV1SignatureIsTriedAndOtherSchemesIgnored() throws {
        let good = sign(payload, at: now).split(separator: ",")[1]
        let wrong = sign(payload, at: now, secret: "old").split(separator: ",")[1]
        let header = "t=\(now),v0=abcd,\(wrong),\(good),v2=zz"
        try verifier.verify(payload: payload, header: header, nowSeconds: now)
    }

    static let malformed: [(String?, String)] = [
        (nil, "missing_signature"),
        ("", "missing_signature"),
        ("garbage", "malformed_signature"),
        ("v1=abc", "malformed_signature"),
        ("t=1,t=2,v1=00", "malformed_signature"),
        ("t=1790000000", "no_v1_signature"),
        ("t=1790000000,v1=nothex", "no_v1_signature"),
        ("t=-5,v1=" + String(repeating: "0", count: 64), "invalid_timestamp"),
        ("t=+5,v1=" + String(repeating: "0", count: 64), "invalid_timestamp"),
        ("t=0,v1=" + String(repeating: "0", count: 64), "invalid_timestamp"),
        ("t=1e9,v1=" + String(repeating: "0", count: 64), "invalid_timestamp"),
        ("t=99999999999999999999,v1=" + String(repeating: "0", count: 64), "invalid_timestamp"),
    ]

    @Test(arguments: malformed)
    func malformedHeadersAreRefusedWithTheirReason(header: String?, code: String) {
        #expect(throws: StripeSignature.Failure.self) {
            try verifier.verify(payload: payload, header: header, nowSeconds: now)
        }
        do {
            try verifier.verify(payload: payload, header: header, nowSeconds: now)
        } catch {
            #expect(error.code == code)
        }
    }

    @Test func wrongSecretAndTamperedBodyMismatch() {
        for (body, header) in [
            (payload, sign(payload, at: now, secret: "whsec_other")),
            (payload + [0x20], sign(payload, at: now)),
        ] {
            #expect(throws: StripeSignature.Failure.signatureMismatch) {
                try verifier.verify(payload: body, header: header, nowSeconds: now)
            }
        }
    }

    @Test func theToleranceHoldsOnBothSidesAtItsEdges() throws {
        try verifier.verify(payload: payload, header: sign(payload, at: now - 300), nowSeconds: now)
        try verifier.verify(payload: payload, header: sign(payload, at: now + 300), nowSeconds: now)
        #expect(throws: StripeSignature.Failure.timestampTooOld(ageSeconds: 301)) {
            try verifier.verify(payload: payload, header: sign(payload, at: now - 301), nowSeconds: now)
        }
        #expect(throws: StripeSignature.Failure.timestampInFuture(aheadSeconds: 301)) {
            try verifier.verify(payload: payload, header: sign(payload, at: now + 301), nowSeconds: now)
        }
    }

    @Test func extremeTimestampsAndClocksCannotWrapIntoTheWindow() {
        // Int64.max: now - t would wrap without saturating arithmetic.
        let far = sign(payload, at: Int64.max)
        #expect(throws: StripeSignature.Failure.self) {
            try verifier.verify(payload: payload, header: far, nowSeconds: now)
        }
        // A clock reading near Int64.min with a large timestamp: the difference overflows.
        #expect(throws: StripeSignature.Failure.self) {
            try verifier.verify(payload: payload, header: sign(payload, at: now), nowSeconds: Int64.min + 5)
        }
        // A huge tolerance does not let a negative timestamp in either (it is refused as invalid).
        let lenient = StripeSignature(secret: secret, toleranceSeconds: Int64.max)
        #expect(throws: StripeSignature.Failure.self) {
            try lenient.verify(
                payload: payload, header: "t=-1,v1=" + String(repeating: "0", count: 64), nowSeconds: now)
        }
    }
}

@Suite struct ReconciliationInputTests {
    @Test func billingPeriodsAreUTCMonths() throws {
        let nov = try #require(BillingPeriod("2026-11"))
        #expect(nov.startMS == 1_793_491_200_000)
        let dec = try #require(BillingPeriod("2026-12"))
        #expect(nov.endMS == dec.startMS)
        #expect(BillingPeriod(unixSeconds: 1_793_491_199)?.description == "2026-10")
        #expect(BillingPeriod(unixSeconds: 1_793_491_200)?.description == "2026-11")
        #expect(BillingPeriod("2026-13") == nil)
        #expect(BillingPeriod("2026-1") == nil)
        #expect(try #require(BillingPeriod("2026-01")).previous.description == "2025-12")
    }

    @Test func invoiceLinesAreMappedByProductOrDescription() {
        let event: [String: Any] = [
            "id": "evt_1", "type": "invoice.paid",
            "data": [
                "object": [
                    "id": "in_1", "currency": "usd", "created": 1_796_169_600,
                    "lines": [
                        "data": [
                            ["amount": 12_345, "description": "OpenAI API usage", "period": ["start": 1_793_491_200]],
                            ["amount": 500, "description": "Hosting", "period": ["start": 1_793_491_200]],
                            [
                                "amount": 1_000, "description": "x", "price": ["product": "prod_claude"],
                                "period": ["start": 1_793_491_200],
                            ],
                        ]
                    ],
                ]
            ],
        ]
        let mapping = InvoiceMapping(rules: [
            .init(product: "prod_claude", provider: "anthropic"),
            .init(description: "*openai*", provider: "openai"),
        ])
        let lines = mapping.lines(ofEvent: event).lines
        #expect(lines.count == 2)
        #expect(
            lines[0].provider == "openai" && lines[0].nanoUSD == 123_450_000_000
                && lines[0].period.description == "2026-11")
        #expect(lines[1].provider == "anthropic" && lines[1].nanoUSD == 10_000_000_000)
        let arrears = InvoiceMapping(rules: [.init(description: "*openai*", provider: "openai", period: .previousMonth)]
        )
        #expect(arrears.lines(ofEvent: event).lines.first?.period.description == "2026-11")
    }

    @Test func openAIAndAnthropicExportsParseToTheSameMoney() throws {
        let openAI = """
            {"object":"page","data":[{"object":"bucket","start_time":1793491200,"end_time":1793577600,
            "results":[{"object":"organization.costs.result","amount":{"value":0.06,"currency":"usd"}},
                       {"object":"organization.costs.result","amount":{"value":1.5,"currency":"usd"}}]}],
            "has_more":false,"next_page":null}
            """
        let o = try CostExport.parse(openAI, reference: "o.json")
        #expect(
            o == [
                CostLine(
                    provider: "openai", period: BillingPeriod("2026-11")!, nanoUSD: 1_560_000_000,
                    source: "import:openai", reference: "o.json")
            ])
        let anthropic = """
            {"data":[{"starting_at":"2026-11-02T00:00:00Z","ending_at":"2026-11-03T00:00:00Z",
            "results":[{"currency":"USD","amount":"123.45","cost_type":"tokens"}]}],"has_more":false,"next_page":null}
            """
        let a = try CostExport.parse(anthropic, reference: "a.json")
        #expect(a.first?.nanoUSD == 1_234_500_000 && a.first?.provider == "anthropic")
        let csv = "starting_at,amount,currency\r\n2026-11-01T00:00:00Z,100,USD\r\n\"2026-11-05\",\"50.5\",USD\r\n"
        #expect(try CostExport.parse(csv, reference: "a.csv").first?.nanoUSD == 1_505_000_000)
        let plain = "date,cost_usd\n2026-11-01,2.25\n"
        #expect(throws: CostExport.Failure.self) { try CostExport.parse(plain, reference: "p.csv") }
        #expect(try CostExport.parse(plain, reference: "p.csv", provider: "openai").first?.nanoUSD == 2_250_000_000)
        #expect(throws: CostExport.Failure.self) { try CostExport.parse("a,b\n1,2\n", reference: "x.csv") }
    }

    @Test func driftAgainstThresholds() {
        let d = Drift(billedNanoUSD: 110_000_000_000, ledgerNanoUSD: 100_000_000_000)
        #expect(d.nanoUSD == 10_000_000_000)
        #expect(d.exceeds(thresholdNanoUSD: 1_000_000_000, thresholdFraction: nil))
        #expect(!d.exceeds(thresholdNanoUSD: 20_000_000_000, thresholdFraction: nil))
        #expect(d.exceeds(thresholdNanoUSD: nil, thresholdFraction: 0.05))
        #expect(Drift(billedNanoUSD: .min, ledgerNanoUSD: .max).nanoUSD == .min)
    }
}
