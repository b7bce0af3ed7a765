import Foundation
import GRDB
import SpendwallCore

/// The mapping between ``SpendEvent`` and the `spend_events` columns.
enum EventColumns {
    static let names = [
        "request_id", "time_ms", "path", "provider", "model", "agent", "app", "peer_pid", "peer_uid",
        "peer_exe", "peer_script", "session", "tags", "input_tokens", "output_tokens", "cache_read_tokens",
        "cache_write_tokens", "reasoning_tokens", "cost_nanousd", "reserved_nanousd", "priced", "status",
        "outcome", "duration_ms", "reservation_id", "estimated",
        "cache_write_1h_tokens",
    ]
    static let list = names.joined(separator: ", ")
    static let placeholders = Array(repeating: "?", count: names.count).joined(separator: ", ")

    static func values(of e: SpendEvent) -> [(any DatabaseValueConvertible)?] {
        [
            e.requestID, e.timeMS, e.path.rawValue, e.provider.rawValue, e.model, e.agent, e.app,
            e.peerPID.map { Int64($0) }, e.peerUID.map { Int64($0) }, e.peerExe, e.peerScript, e.session,
            encodeTags(e.tags), e.usage.inputTokens, e.usage.outputTokens, e.usage.cacheReadTokens,
            e.usage.cacheWriteTokens, e.usage.reasoningTokens, e.costNanoUSD, e.reservedNanoUSD, e.priced,
            e.status, e.outcome.rawValue, e.durationMS, e.reservationID, e.estimated,
            e.usage.cacheWrite1hTokens,
        ]
    }

    static func event(from row: Row) -> SpendEvent {
        SpendEvent(
            requestID: row["request_id"], timeMS: row["time_ms"],
            path: SpendPath(rawValue: row["path"] ?? "") ?? .sdk,
            provider: Provider(rawValue: row["provider"] ?? "") ?? .openai, model: row["model"],
            agent: row["agent"], app: row["app"],
            peerPID: (row["peer_pid"] as Int64?).map { Int32(truncatingIfNeeded: $0) },
            peerUID: (row["peer_uid"] as Int64?).map { UInt32(truncatingIfNeeded: $0) },
            peerExe: row["peer_exe"], peerScript: row["peer_script"], session: row["session"],
            tags: decodeTags(row["tags"]),
            usage: Usage(
                inputTokens: row["input_tokens"], outputTokens: row["output_tokens"],
                cacheReadTokens: row["cache_read_tokens"], cacheWriteTokens: row["cache_write_tokens"],
                reasoningTokens: row["reasoning_tokens"],
                cacheWrite1hTokens: (row["cache_write_1h_tokens"] as Int64?) ?? 0),
            costNanoUSD: row["cost_nanousd"], reservedNanoUSD: row["reserved_nanousd"], priced: row["priced"],
            status: row["status"], outcome: Outcome(rawValue: row["outcome"] ?? "") ?? .error,
            durationMS: row["duration_ms"], reservationID: row["reservation_id"],
            estimated: (row["estimated"] as Bool?) ?? false)
    }

    static func encodeTags(_ tags: [String: String]) -> String {
        guard !tags.isEmpty else { return "{}" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? String(decoding: encoder.encode(tags), as: UTF8.self)) ?? "{}"
    }

    static func decodeTags(_ text: String?) -> [String: String] {
        guard let text, text != "{}" else { return [:] }
        return (try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))) ?? [:]
    }
}
