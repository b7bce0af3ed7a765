import Testing

@testable import SpendwallAlerts
@testable import SpendwallConfig

@Suite struct BackoffPolicyTests {
    let policy = BackoffPolicy(baseDelayMS: 1_000, maxDelayMS: 30_000, multiplier: 2, jitter: 0.5, maxAttempts: 5)

    @Test(arguments: [(1, 1_000), (2, 2_000), (3, 4_000), (5, 16_000), (6, 30_000), (1_000_000, 30_000)])
    func theCeilingDoublesUpToTheCap(retry: Int, ceiling: Int64) {
        #expect(policy.ceilingMS(retry: retry) == ceiling)
    }

    @Test func jitterStaysWithinItsBand() {
        #expect(policy.delayMS(retry: 3, random: 0) == 2_000)
        #expect(policy.delayMS(retry: 3, random: 0.999_999) <= 4_000)
        #expect(policy.delayMS(retry: 3, random: 0.5) == 3_000)
        #expect(policy.delayMS(retry: 3, random: .nan) == 2_000)
        let none = BackoffPolicy(baseDelayMS: 100, maxDelayMS: 1_000, jitter: 0)
        #expect(none.delayMS(retry: 2, random: 0.7) == 200)
    }

    @Test func retryableFailuresRetryUntilTheLastAttempt() {
        let failure = DeliveryFailure.http(status: 503)!
        #expect(policy.next(after: 1, failure: failure, random: 0) == .retry(afterMS: 500))
        #expect(policy.next(after: 4, failure: failure, random: 1) == .retry(afterMS: 8_000))
        guard case .deadLetter(let reason) = policy.next(after: 5, failure: failure, random: 0) else {
            Issue.record("the fifth failure should dead-letter")
            return
        }
        #expect(reason.contains("5 attempts"))
    }

    @Test(arguments: [400, 401, 403, 404, 410, 301])
    func permanentHTTPFailuresDeadLetterAtOnce(status: Int) {
        let failure = DeliveryFailure.http(status: status)!
        #expect(!failure.retryable)
        guard case .deadLetter = policy.next(after: 1, failure: failure, random: 0) else {
            Issue.record("HTTP \(status) should not be retried")
            return
        }
    }

    @Test(arguments: [408, 429, 500, 502, 503, 504])
    func transientHTTPFailuresRetry(status: Int) {
        #expect(DeliveryFailure.http(status: status)?.retryable == true)
    }

    @Test func successIsNoFailureAndSMTPCodesFollowRFC5321() {
        #expect(DeliveryFailure.http(status: 200) == nil)
        #expect(DeliveryFailure.http(status: 204) == nil)
        #expect(DeliveryFailure.smtp(code: 451, "try later").retryable)
        #expect(!DeliveryFailure.smtp(code: 550, "no such user").retryable)
        #expect(!EmailAlertTransport.classify(curlCode: 67, smtpCode: 535, text: "").retryable)
        #expect(EmailAlertTransport.classify(curlCode: 28, smtpCode: 0, text: "").retryable)
    }

    @Test func theRateLimitSendsOnePerWindowAndCountsTheRest() {
        var limiter = AlertRateLimiter(windowMS: 60_000)
        #expect(limiter.admit(key: "CapBlocked|daily", nowMS: 0) == .send(suppressed: 0))
        #expect(limiter.admit(key: "CapBlocked|daily", nowMS: 10) == .suppress)
        #expect(limiter.admit(key: "CapBlocked|daily", nowMS: 59_999) == .suppress)
        #expect(limiter.admit(key: "CapAlert|daily", nowMS: 20) == .send(suppressed: 0))
        #expect(limiter.admit(key: "CapBlocked|daily", nowMS: 60_000) == .send(suppressed: 2))
    }

    @Test func alertsTomlParsesAndRefusesMistakesWithLines() throws {
        let text = """
            [dispatch]
            base_delay = "10ms"
            max_attempts = 3

            [[transport]]
            name = "hook"
            type = "webhook"
            url = "http://127.0.0.1:9/x"
            secret_env = "HOOK_SECRET"

            [[route]]
            kinds = ["CapBlocked", "KillSwitch"]
            transports = ["hook"]
            """
        let config = try AlertsFile.parse(text, environment: ["HOOK_SECRET": "s3cr3t"])
        #expect(config.dispatch.baseDelayMS == 10)
        #expect(config.transports(for: "KillSwitch").map(\.name) == ["hook"])
        #expect(config.transports(for: "CapAlert").isEmpty)
        #expect(config.transports[0].signingSecret?.value == "s3cr3t")
        #expect("\(config.transports[0].signingSecret!)" == "<secret>")
        #expect(throws: ConfigError.self) { try AlertsFile.parse(text, environment: [:]) }
        do {
            _ = try AlertsFile.parse(
                text.replacingOccurrences(of: "\"KillSwitch\"", with: "\"Nope\""), environment: ["HOOK_SECRET": "x"])
            Issue.record("an unknown kind should be refused")
        } catch {
            #expect(error.line == 12)
        }
        let inline = text.replacingOccurrences(of: "secret_env = \"HOOK_SECRET\"", with: "secret = \"abc\"")
        #expect(throws: ConfigError.self) { try AlertsFile.parse(inline, filePrivate: false) }
        #expect(try AlertsFile.parse(inline, filePrivate: true).transports[0].signingSecret?.value == "abc")
    }
}
