import Foundation
import SpendwallCore

/// The input tokens of an image, by the providers' documented rules.
enum ImageTokens {
    /// OpenAI (gpt-4o and later, tile rule): `low` detail is 85 tokens; otherwise the image is
    /// fitted inside 2048×2048, then its shortest side is scaled down to 768 px, and each
    /// 512 px tile costs 170 tokens on top of 85 (gpt-4o-mini: 2,833 + 5,667 a tile). An image
    /// whose size cannot be read is counted at the largest size the rule allows (8 tiles).
    static func openAI(_ part: JSONValue, model: String) -> Int {
        let image = part["image_url"]
        let detail = image?["detail"]?.stringValue ?? part["detail"]?.stringValue ?? "auto"
        let mini = model.hasPrefix("gpt-4o-mini")
        let (base, perTile) = mini ? (2833, 5667) : (85, 170)
        if detail == "low" { return base }
        let url = image?["url"]?.stringValue ?? image?.stringValue ?? part["image_url"]?.stringValue ?? ""
        guard let (width, height) = dimensions(ofDataURL: url) else { return base + 8 * perTile }
        return base + perTile * tiles(width: width, height: height)
    }

    /// Anthropic: about width × height / 750 tokens, after the image is scaled to at most
    /// 1,568 px on its long side (so never more than about 1,600); 1,600 when the size is unknown.
    static func anthropic(_ part: JSONValue) -> Int {
        guard part["source"]?["type"]?.stringValue == "base64",
            let data = part["source"]?["data"]?.stringValue,
            let (width, height) = dimensions(ofBase64: data)
        else { return 1600 }
        var w = Double(width)
        var h = Double(height)
        let longest = max(w, h)
        if longest > 1568 {
            w *= 1568 / longest
            h *= 1568 / longest
        }
        return min(1600, Int((w * h / 750).rounded(.up)))
    }

    static func tiles(width: Int, height: Int) -> Int {
        var w = Double(width)
        var h = Double(height)
        if max(w, h) > 2048 {
            let scale = 2048 / max(w, h)
            w *= scale
            h *= scale
        }
        if min(w, h) > 768 {
            let scale = 768 / min(w, h)
            w *= scale
            h *= scale
        }
        return Int((w / 512).rounded(.up)) * Int((h / 512).rounded(.up))
    }

    static func dimensions(ofDataURL url: String) -> (Int, Int)? {
        guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ",") else { return nil }
        return dimensions(ofBase64: String(url[url.index(after: comma)...]))
    }

    /// Width and height from the first bytes of a PNG, GIF, JPEG or WebP in base64.
    static func dimensions(ofBase64 text: String) -> (Int, Int)? {
        // 64 KiB of base64 is enough to reach a JPEG's frame header in practice.
        var prefix = String(text.utf8.prefix(65_536).map { Character(Unicode.Scalar($0)) })
        prefix.removeLast(prefix.count % 4)
        guard let data = Data(base64Encoded: prefix) else { return nil }
        return dimensions(of: [UInt8](data))
    }

    static func dimensions(of b: [UInt8]) -> (Int, Int)? {
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        func le16(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
        func be32(_ i: Int) -> Int { be16(i) << 16 | be16(i + 2) }
        if b.count >= 24, b[0] == 0x89, b[1] == 0x50, b[2] == 0x4E, b[3] == 0x47 {
            return (be32(16), be32(20))
        }
        if b.count >= 10, b[0] == 0x47, b[1] == 0x49, b[2] == 0x46 { return (le16(6), le16(8)) }
        if b.count >= 30, b[0] == 0x52, b[1] == 0x49, b[8] == 0x57, b[9] == 0x45 {  // RIFF....WEBP
            switch (b[12], b[13], b[14], b[15]) {
            case (0x56, 0x50, 0x38, 0x20):  // "VP8 "
                return (le16(26) & 0x3FFF, le16(28) & 0x3FFF)
            case (0x56, 0x50, 0x38, 0x4C):  // "VP8L"
                let bits = Int(b[21]) | Int(b[22]) << 8 | Int(b[23]) << 16 | Int(b[24]) << 24
                return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            case (0x56, 0x50, 0x38, 0x58):  // "VP8X"
                let w = Int(b[24]) | Int(b[25]) << 8 | Int(b[26]) << 16
                let h = Int(b[27]) | Int(b[28]) << 8 | Int(b[29]) << 16
                return (w + 1, h + 1)
            default: return nil
            }
        }
        if b.count >= 4, b[0] == 0xFF, b[1] == 0xD8 {
            var i = 2
            while i + 9 < b.count {
                guard b[i] == 0xFF else { return nil }
                let marker = b[i + 1]
                if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) {
                    i += 2
                    continue
                }
                // SOF0…SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
                if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                    return (be16(i + 7), be16(i + 5))
                }
                i += 2 + be16(i + 2)
            }
        }
        return nil
    }
}
