/// When to try an alert delivery again: capped exponential backoff with jitter.
///
/// Attempt `n` (1 for the first retry) waits a random time in
/// `[(1 - jitter) × d, d]`, where `d = min(maxDelay, baseDelay × multiplier^(n-1))`; after
/// `maxAttempts` deliveries in all the alert is dead-lettered. Pure: the caller passes the
/// random draw, so tests pin it.
public struct BackoffPolicy: Sendable, Hashable {
    public var baseDelayMS: Int64
    public var maxDelayMS: Int64
    public var multiplier: Double
    /// 0 (no jitter) … 1 (full jitter).
    public var jitter: Double
    /// Deliveries in all, the first included.
    public var maxAttempts: Int

    public init(
        baseDelayMS: Int64 = 1_000, maxDelayMS: Int64 = 300_000, multiplier: Double = 2, jitter: Double = 0.5,
        maxAttempts: Int = 8
    ) {
        self.baseDelayMS = max(0, baseDelayMS)
        self.maxDelayMS = max(0, maxDelayMS)
        self.multiplier = multiplier.isFinite ? max(1, multiplier) : 2
        self.jitter = jitter.isFinite ? min(1, max(0, jitter)) : 0
        self.maxAttempts = max(1, maxAttempts)
    }

    /// The capped delay before retry `retry` (1-based), before jitter.
    public func ceilingMS(retry: Int) -> Int64 {
        guard retry >= 1, baseDelayMS > 0 else { return 0 }
        var delay = Double(baseDelayMS)
        var n = 1
        // Stops as soon as the cap is reached, so huge retry numbers cannot overflow.
        while n < retry, delay < Double(maxDelayMS) {
            delay *= multiplier
            n += 1
        }
        return delay >= Double(maxDelayMS) ? maxDelayMS : Int64(delay)
    }

    /// The delay before retry `retry`, given a uniform random draw in [0, 1).
    public func delayMS(retry: Int, random: Double) -> Int64 {
        let ceiling = ceilingMS(retry: retry)
        let r = random.isFinite ? min(1, max(0, random)) : 0
        let floor = Double(ceiling) * (1 - jitter)
        return Int64(floor + (Double(ceiling) - floor) * r)
    }

    /// What to do after delivery number `attempt` (1-based) failed with `failure`.
    public func next(after attempt: Int, failure: DeliveryFailure, random: Double) -> NextStep {
        guard failure.retryable else { return .deadLetter(reason: "permanent failure: \(failure.reason)") }
        guard attempt < maxAttempts else {
            return .deadLetter(reason: "gave up after \(attempt) attempts: \(failure.reason)")
        }
        return .retry(afterMS: delayMS(retry: attempt, random: random))
    }

    public enum NextStep: Sendable, Hashable {
        case retry(afterMS: Int64)
        case deadLetter(reason: String)
    }
}

/// Why one delivery failed, and whether trying again can help.
public struct DeliveryFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public var retryable: Bool

    public init(reason: String, retryable: Bool) {
        self.reason = reason
        self.retryable = retryable
    }

    public var description: String { reason }

    /// An HTTP answer: 408, 429 and 5xx are worth retrying; other 4xx (400, 401, 403, 404…)
    /// will fail the same way again. Nil for 2xx (delivered).
    public static func http(status: Int) -> DeliveryFailure? {
        switch status {
        case 200..<300: return nil
        case 408, 425, 429, 500...599: return DeliveryFailure(reason: "HTTP \(status)", retryable: true)
        case 300..<400: return DeliveryFailure(reason: "HTTP \(status) (redirects are not followed)", retryable: false)
        default: return DeliveryFailure(reason: "HTTP \(status)", retryable: false)
        }
    }

    /// A timeout or a connection that could not be made or was cut: retry.
    public static func network(_ what: String) -> DeliveryFailure {
        DeliveryFailure(reason: what, retryable: true)
    }

    /// An SMTP reply code: 4xx is transient, 5xx permanent (RFC 5321 §4.2.1).
    public static func smtp(code: Int, _ what: String) -> DeliveryFailure {
        DeliveryFailure(reason: "SMTP \(code): \(what)", retryable: !(500...599).contains(code))
    }
}
