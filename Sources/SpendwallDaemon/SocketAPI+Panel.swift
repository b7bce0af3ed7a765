import Foundation
import SpendwallCore
import SpendwallLedger
import SpendwallPanel

/// What the socket API offers the panel beyond its other routes: spend series for the charts
/// and the one-time login link `spendwall panel` opens.
extension SocketAPI {
    struct SeriesAnswer: Encodable {
        struct Point: Encodable {
            var bucket: String
            var key: String
            var calls: Int64
            var cost_nanousd: Int64
        }
        var by: String
        var bucket: String
        var since: String
        var since_ms: Int64
        var points: [Point]
    }

    /// `GET /v1/spend/series?by=app&since=7d&bucket=day`: spend per local day (or hour) and key.
    func spendSeries(_ request: APIRequest) async -> APIResponse {
        let byText = request.query["by"] ?? "app"
        guard let grouping = SpendGrouping(rawValue: byText), grouping != .tag, grouping != .day else {
            return .badRequest("by must be one of app, agent, model, session, provider, outcome, not \"\(byText)\"")
        }
        let sinceText = request.query["since"] ?? "7d"
        guard let span = Duration.milliseconds(parsing: sinceText) else {
            return .badRequest("since must be a duration like 1h, 1d, 7d or 30d, not \"\(sinceText)\"")
        }
        let bucketText = request.query["bucket"] ?? (span <= 86_400_000 ? "hour" : "day")
        guard let bucket = SpendBucket(rawValue: bucketText) else {
            return .badRequest("bucket must be hour or day, not \"\(bucketText)\"")
        }
        let since = clock.nowMS() - span
        do {
            let points = try await writer.store.spendSeries(by: grouping, bucket: bucket, sinceMS: since)
            return .json(
                SeriesAnswer(
                    by: grouping.rawValue, bucket: bucket.rawValue, since: sinceText, since_ms: since,
                    points: points.map {
                        .init(bucket: $0.bucket, key: $0.key, calls: $0.calls, cost_nanousd: $0.costNanoUSD)
                    }))
        } catch {
            return .error(Self.spendwallError(error), status: .serviceUnavailable)
        }
    }

    struct PanelLinkAnswer: Encodable {
        var url: String
        var expires_ms: Int64
    }

    /// `POST /v1/panel/link`: a one-time login link to the panel (for `spendwall panel`). Only
    /// the socket offers it, so only the user's own processes can log a browser in.
    func panelLink() -> APIResponse {
        guard case .listening(let address) = loopback.state else {
            let why: String
            if case .failed(let reason) = loopback.state { why = reason } else { why = "it is still starting" }
            return .error(
                SpendwallError(.unavailable, "the panel is served on the loopback listener, which is not up: \(why)"),
                status: .serviceUnavailable)
        }
        let (code, expires) = panelLogins.issue(nowMS: clock.nowMS())
        return .json(PanelLinkAnswer(url: "http://\(address)/panel/login?code=\(code)", expires_ms: expires))
    }
}
