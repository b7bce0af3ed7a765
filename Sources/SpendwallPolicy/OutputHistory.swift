/// The output tokens recent calls actually produced, per agent and model: what an `expected`
/// reservation reserves instead of the full `max_tokens`.
///
/// Each agent+model keeps its last ``capacity`` counts; a percentile needs at least
/// ``minimumSamples`` of them, and is cached until the next count arrives.
struct OutputHistory {
    static let capacity = 256
    static let minimumSamples = 20
    /// Agent+model pairs kept at most (the oldest-touched pair is dropped past it).
    static let maximumKeys = 10_000

    private struct Samples {
        var counts: [Int64] = []
        var next = 0
        var sorted: [Int64]?
        var touched: UInt64 = 0
    }

    private var samples: [String: Samples] = [:]
    private var clock: UInt64 = 0

    static func key(agent: String?, model: String) -> String { (agent ?? "") + "\u{1F}" + model }

    /// Records one call's output tokens.
    mutating func add(agent: String?, model: String, outputTokens: Int64) {
        let key = Self.key(agent: agent, model: model)
        clock &+= 1
        if samples[key] == nil, samples.count >= Self.maximumKeys,
            let oldest = samples.min(by: { $0.value.touched < $1.value.touched })?.key
        {
            samples[oldest] = nil
        }
        var entry = samples[key] ?? Samples()
        if entry.counts.count < Self.capacity {
            entry.counts.append(max(outputTokens, 0))
        } else {
            entry.counts[entry.next] = max(outputTokens, 0)
            entry.next = (entry.next + 1) % Self.capacity
        }
        entry.sorted = nil
        entry.touched = clock
        samples[key] = entry
    }

    /// The `fraction` percentile (nearest rank, rounded up) of recent output tokens, or nil
    /// while fewer than ``minimumSamples`` calls are known.
    mutating func percentile(_ fraction: Double, agent: String?, model: String) -> Int64? {
        let key = Self.key(agent: agent, model: model)
        guard var entry = samples[key], entry.counts.count >= Self.minimumSamples else { return nil }
        let sorted = entry.sorted ?? entry.counts.sorted()
        if entry.sorted == nil {
            entry.sorted = sorted
            samples[key] = entry
        }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// How many counts are known for an agent+model.
    func count(agent: String?, model: String) -> Int {
        samples[Self.key(agent: agent, model: model)]?.counts.count ?? 0
    }
}
