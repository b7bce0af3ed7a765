import Foundation
import SpendwallClient

extension DaemonClient {
    /// POSTs a JSON object and returns the status and the decoded answer.
    public func post(_ path: String, _ object: [String: Any]) async throws -> (status: Int, json: [String: Any]) {
        let response = try await post(path, json: try JSONSerialization.data(withJSONObject: object))
        return (response.status, response.json ?? [:])
    }

    /// GETs a path and returns the status and the decoded answer.
    public func getJSON(_ path: String) async throws -> (status: Int, json: [String: Any]) {
        let response = try await get(path)
        return (response.status, response.json ?? [:])
    }
}

/// Reads an integer out of decoded JSON (which may hold Int or Int64 or Double).
public func int64(_ value: Any?) -> Int64? {
    switch value {
    case let v as Int: return Int64(v)
    case let v as Int64: return v
    case let v as Double: return Int64(v)
    case let v as NSNumber: return v.int64Value
    default: return nil
    }
}
