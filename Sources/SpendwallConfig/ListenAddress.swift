/// A loopback `host:port` to listen on: `127.0.0.1:8787`, `[::1]:8787`, `localhost:8787`.
///
/// The proxy and panel listener never binds anything but a loopback address: it forwards
/// calls with the user's API keys and changes kill switches, so no other machine may reach it.
/// Port 0 asks the kernel for a free port (tests use it; `/v1/health` says which it got).
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses and checks an address; the error says what is wrong and what would do.
    public static func parse(_ text: String) -> Result<ListenAddress, ListenAddressError> {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") else {
                return .failure(.init("\"\(text)\" is not host:port (an IPv6 address is written [::1]:8787)"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(.init("\"\(text)\" is not host:port (like 127.0.0.1:8787)"))
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (0...65_535).contains(port) else {
            return .failure(.init("\"\(text)\" has no valid port (0 to 65535)"))
        }
        guard Self.isLoopback(host) else {
            return .failure(
                .init(
                    "\"\(text)\" is not a loopback address; the proxy and panel listen only on 127.0.0.1, ::1 or localhost"
                ))
        }
        return .success(ListenAddress(host: String(host), port: port))
    }

    /// `localhost`, any 127.x.y.z, or `::1`.
    static func isLoopback(_ host: Substring) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { part in UInt8(part).map { String($0) == part } ?? false }
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why a listen address was refused.
public struct ListenAddressError: Error, Sendable, Hashable {
    public var message: String
    init(_ message: String) { self.message = message }
}
