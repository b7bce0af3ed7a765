import ArgumentParser
import Foundation

struct PanelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "panel",
        abstract: "Open the panel in your browser with a one-time login link (also printed, for a headless machine).",
        discussion: """
            The link logs one browser in, once, within five minutes; the browser then keeps a session cookie
            for 30 days. Delete panel.token in the config directory and restart the daemon to log every
            browser out.
            """)

    @Flag(help: "Only print the link; do not start a browser.") var noOpen = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let response = try await CommandContext.client.post("/v1/panel/link", json: Data("{}".utf8))
        if json { return CommandContext.printJSON(response.body) }
        guard response.status == 200, let url = response.json?["url"] as? String else {
            throw CLIFailure.failure(response.error?.message ?? "the daemon answered HTTP \(response.status)")
        }
        print("Spendwall panel (this link works once, for five minutes):")
        print(url)
        guard !noOpen, Self.hasDisplay, let opener = Self.opener() else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: opener)
        process.arguments = [url]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { print("(could not start a browser: open the link yourself)") }
    }

    static var hasDisplay: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["DISPLAY"] != nil || environment["WAYLAND_DISPLAY"] != nil
    }

    /// The desktop's "open this URL" program, if there is one.
    static func opener() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            for name in ["xdg-open", "sensible-browser"] {
                let candidate = "\(directory)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        return nil
    }
}
