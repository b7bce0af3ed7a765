/// One server-sent event: its `event:` name (if any) and its `data:` lines joined by `\n`.
public struct SSEEvent: Sendable, Hashable {
    public var name: String?
    public var data: String

    public init(name: String?, data: String) {
        self.name = name
        self.data = data
    }
}

/// An incremental parser of `text/event-stream` (the WHATWG rules): feed it the bytes of a
/// response as they arrive, split anywhere, and it returns each event once its blank line has
/// arrived. Lines end in LF, CRLF or CR; `:` lines are comments; several `data:` lines make one
/// event; `id:` and `retry:` are read and ignored. Pure and allocation-light: the proxy runs it
/// beside every streamed byte it forwards.
public struct SSEParser: Sendable {
    private var line: [UInt8] = []
    private var name: String?
    private var data: [UInt8] = []
    private var hasData = false
    private var lastWasCR = false
    /// A line longer than this is dropped (an event of tens of megabytes is not a usage event).
    public let maxLineBytes: Int

    public init(maxLineBytes: Int = 16 << 20) {
        self.maxLineBytes = maxLineBytes
    }

    /// Feeds bytes; returns the events they complete.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [SSEEvent] {
        var events: [SSEEvent] = []
        for byte in bytes {
            switch byte {
            case 0x0A:
                if lastWasCR {
                    lastWasCR = false  // the LF of a CRLF: the line already ended
                    continue
                }
                endLine(into: &events)
            case 0x0D:
                lastWasCR = true
                endLine(into: &events)
            default:
                lastWasCR = false
                if line.count < maxLineBytes { line.append(byte) }
            }
        }
        return events
    }

    /// Ends the stream: an event without its final blank line is not dispatched (as browsers do).
    public mutating func finish() -> [SSEEvent] {
        line.removeAll()
        data.removeAll()
        hasData = false
        name = nil
        return []
    }

    private mutating func endLine(into events: inout [SSEEvent]) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if hasData {
                events.append(SSEEvent(name: name, data: String(decoding: data, as: UTF8.self)))
            }
            data.removeAll(keepingCapacity: true)
            hasData = false
            name = nil
            return
        }
        if line[0] == UInt8(ascii: ":") { return }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        let field = line[..<colon]
        var valueStart = colon < line.endIndex ? line.index(after: colon) : colon
        if valueStart < line.endIndex, line[valueStart] == UInt8(ascii: " ") {
            valueStart = line.index(after: valueStart)
        }
        let value = line[valueStart...]
        if field.elementsEqual("data".utf8) {
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        } else if field.elementsEqual("event".utf8) {
            name = String(decoding: value, as: UTF8.self)
        }
    }
}
