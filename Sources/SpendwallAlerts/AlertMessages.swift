import Foundation
import SpendwallCore

/// The bodies each transport sends for an alert.
enum AlertMessages {
    /// A Slack Block Kit message: a header, the fields (cap, app, agent, spent/limit), and a
    /// button to the panel when `panelURL` is set. `text` is the notification fallback.
    static func slack(_ alert: Alert, panelURL: String?) -> [UInt8] {
        var blocks: [[String: Any]] = [
            ["type": "header", "text": ["type": "plain_text", "text": String(alert.title.prefix(150))]]
        ]
        let fields = alert.fields.prefix(10).map { label, value in
            ["type": "mrkdwn", "text": "*\(escape(label))*\n\(escape(value))"]
        }
        if !fields.isEmpty { blocks.append(["type": "section", "fields": Array(fields)]) }
        blocks.append([
            "type": "context",
            "elements": [
                [
                    "type": "mrkdwn",
                    "text":
                        "Spendwall · \(alert.kind) · <!date^\(alert.timeMS / 1000)^{date_short_pretty} {time_secs}|\(alert.timeMS)>",
                ]
            ],
        ])
        if let panelURL {
            blocks.append([
                "type": "actions",
                "elements": [
                    ["type": "button", "text": ["type": "plain_text", "text": "Open the panel"], "url": panelURL]
                ],
            ])
        }
        return json(["text": alert.title, "blocks": blocks])
    }

    /// The generic webhook's JSON: the event as the event stream has it, plus a summary.
    static func webhook(_ alert: Alert, transport: String) -> [UInt8] {
        var object = alert.object
        object["summary"] = alert.title
        object["suppressed"] = alert.suppressed
        object["transport"] = transport
        return json(object)
    }

    /// An RFC 5322 text message (CRLF line ends).
    static func email(_ alert: Alert, from: String, to: [String], panelURL: String?, nowMS: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        let date = formatter.string(from: Date(timeIntervalSince1970: Double(nowMS) / 1000))
        var body: [String] = [alert.title, ""]
        for (label, value) in alert.fields { body.append("\(label): \(value)") }
        if let panelURL { body += ["", "Panel: \(panelURL)"] }
        body += ["", "-- ", "Spendwall (\(alert.kind)). Change where alerts go in alerts.toml."]
        let headers = [
            "From: \(from)",
            "To: \(to.joined(separator: ", "))",
            "Subject: \(encodedHeader("[Spendwall] " + alert.title))",
            "Date: \(date)",
            "Message-ID: <\(UUID().uuidString.lowercased())@spendwall>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "X-Spendwall-Kind: \(alert.kind)",
        ]
        return (headers + [""] + body).joined(separator: "\r\n") + "\r\n"
    }

    /// RFC 2047 for a subject that is not plain ASCII.
    static func encodedHeader(_ text: String) -> String {
        let clean = text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        guard clean.unicodeScalars.contains(where: { !$0.isASCII }) else { return clean }
        return "=?utf-8?B?\(Data(clean.utf8).base64EncodedString())?="
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    static func json(_ object: Any) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8))
    }
}
