/// A file of the panel: its content type and bytes.
public struct PanelAsset: Sendable {
    public let contentType: String
    public let body: [UInt8]
}

/// The panel's HTML, CSS and JavaScript, compiled into the binary (`PanelAssets+Embedded.swift`,
/// generated from `Assets/` by `scripts/embed-panel-assets.py`): nothing to install beside it and
/// no build step beyond `swift build`.
public enum PanelAssets {
    static let files: [String: PanelAsset] = {
        var files: [String: PanelAsset] = [:]
        for (name, text) in embedded {
            files[name] = PanelAsset(contentType: contentType(of: name), body: Array(text.utf8))
        }
        return files
    }()

    /// The asset at a path under `/panel/` (`/panel/` itself is `index.html`).
    public static func asset(at path: String) -> PanelAsset? {
        guard path.hasPrefix("/panel/") else { return nil }
        let name = String(path.dropFirst("/panel/".count))
        return files[name.isEmpty ? "index.html" : name]
    }

    /// The names of every asset.
    public static var names: [String] { files.keys.sorted() }

    static func contentType(of name: String) -> String {
        if name.hasSuffix(".html") { return "text/html; charset=utf-8" }
        if name.hasSuffix(".css") { return "text/css; charset=utf-8" }
        if name.hasSuffix(".js") { return "text/javascript; charset=utf-8" }
        if name.hasSuffix(".svg") { return "image/svg+xml" }
        return "application/octet-stream"
    }
}
