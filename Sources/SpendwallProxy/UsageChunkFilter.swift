import SpendwallCore

/// Takes the usage-only chunk out of an OpenAI stream that the proxy asked for usage
/// (`openai_stream_usage = "inject"`), so the client sees the stream it asked for.
///
/// It passes the stream's bytes through event by event, unchanged, and drops exactly the
/// events whose data is a chunk with no choices and a usage object (the one `include_usage`
/// adds before `[DONE]`). Bytes are held only until their event ends. Pure: no I/O.
public struct UsageChunkFilter: Sendable {
    private var pending: [UInt8] = []
    /// Where the line being read began, in `pending`.
    private var lineStart = 0
    private var lastWasCR = false
    private var sse = SSEParser()

    public init() {}

    /// Feeds upstream bytes; returns the bytes to send on (whole events, or nothing yet).
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        for byte in bytes {
            pending.append(byte)
            switch byte {
            case 0x0A where lastWasCR:
                lastWasCR = false
                lineStart = pending.count  // the LF of a CRLF: that line already ended
            case 0x0A, 0x0D:
                lastWasCR = byte == 0x0D
                let lineLength = pending.count - 1 - lineStart
                lineStart = pending.count
                if lineLength == 0 { endEvent(into: &out) }
            default:
                lastWasCR = false
            }
        }
        return out
    }

    /// Ends the stream: whatever is held goes out as it is.
    public mutating func finish() -> [UInt8] {
        defer { pending = [] }
        return pending
    }

    /// An event ended (its blank line is in `pending`): send it on unless it is the usage chunk.
    private mutating func endEvent(into out: inout [UInt8]) {
        // A CR ending the blank line may have its LF in the next chunk: keep that LF's place.
        let events = sse.feed(pending)
        let drop = events.contains { Self.isUsageOnlyChunk($0.data) }
        if !drop { out.append(contentsOf: pending) }
        pending.removeAll(keepingCapacity: true)
        lineStart = 0
    }

    static func isUsageOnlyChunk(_ data: String) -> Bool {
        guard data.first == "{", let json = try? JSONParser.parse(data), case .object = json["usage"] ?? .null,
            let choices = json["choices"]?.arrayValue
        else { return false }
        return choices.isEmpty
    }
}
