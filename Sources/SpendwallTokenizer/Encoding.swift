/// An OpenAI BPE encoding (`o200k_base`, `cl100k_base`) that gives exactly the token ids
/// Python's `tiktoken` gives.
///
/// Two ways to encode, as tiktoken has:
/// - ``encodeOrdinary(_:)`` — tiktoken's `encode_ordinary`: special-token text such as
///   `<|endoftext|>` is ordinary text. **The daemon counts with this one**: user text never
///   fails to encode and cannot smuggle in a special token.
/// - ``encode(_:allowedSpecial:)`` — tiktoken's `encode(text, allowed_special=...)`: the
///   allowed special tokens' text becomes their single ids. (tiktoken's default, which raises
///   on any special-token text, is not offered: the daemon must never fail on user text.)
///
/// Pure: building one from rank-file bytes and encoding do no I/O (``RankFileStore`` finds
/// and verifies the files). Immutable and `Sendable`; one value can serve every thread.
public struct Encoding: Sendable {
    public let name: EncodingName
    let table: RankTable
    /// The special tokens' UTF-8 bytes and ids, longest first.
    private let specials: [(bytes: [UInt8], id: Int)]

    /// Builds the encoding from the contents of its rank file (not checked against the pinned
    /// hash here: ``RankFileStore`` does that).
    public init(name: EncodingName, rankFile: [UInt8]) throws {
        self.name = name
        self.table = try RankTable(RankFile.parse(rankFile))
        for byte in 0...255 {
            var b = UInt8(byte)
            guard table.rank(&b, 1) != RankTable.noRank else {
                throw TokenizerError(.malformed, "the rank file of \(name) has no token for byte \(byte)")
            }
        }
        self.specials = name.specialTokens.map { (Array($0.key.utf8), $0.value) }
            .sorted { $0.bytes.count > $1.bytes.count }
        for special in specials where table.bytes(ofRank: special.id) != nil {
            throw TokenizerError(.malformed, "the rank file of \(name) uses special token id \(special.id)")
        }
    }

    /// The number of mergeable tokens.
    public var mergeableTokenCount: Int { table.count }

    /// The special tokens and their ids.
    public var specialTokens: [String: Int] { name.specialTokens }

    /// Which special tokens ``encode(_:allowedSpecial:)`` turns into their ids.
    public enum AllowedSpecial: Sendable {
        /// Every special token of the encoding (tiktoken's `allowed_special="all"`).
        case all
        /// These special tokens only; others are ordinary text.
        case only(Set<String>)
    }

    /// tiktoken's `encode_ordinary`: special-token text is encoded as ordinary text.
    public func encodeOrdinary(_ text: String) -> [Int] {
        var text = text
        return text.withUTF8 { utf8 in
            var out: [Int] = []
            out.reserveCapacity(utf8.count / 3)
            guard let base = utf8.baseAddress else { return out }
            var merger = BytePairMerger()
            encodeSegment(base, 0, utf8.count, into: &out, merger: &merger)
            return out
        }
    }

    /// tiktoken's `encode(text, allowed_special=...)`: the allowed special tokens' text gives
    /// their ids; everything else (including other special-token text) is ordinary text.
    public func encode(_ text: String, allowedSpecial: AllowedSpecial = .all) -> [Int] {
        let allowed: [(bytes: [UInt8], id: Int)]
        switch allowedSpecial {
        case .all: allowed = specials
        case .only(let names): allowed = specials.filter { names.contains(String(decoding: $0.bytes, as: UTF8.self)) }
        }
        if allowed.isEmpty { return encodeOrdinary(text) }
        var startsSpecial = [Bool](repeating: false, count: 256)
        for special in allowed { startsSpecial[Int(special.bytes[0])] = true }
        var text = text
        return text.withUTF8 { utf8 in
            var out: [Int] = []
            out.reserveCapacity(utf8.count / 3)
            guard let base = utf8.baseAddress else { return out }
            var merger = BytePairMerger()
            var segmentStart = 0
            var i = 0
            let count = utf8.count
            while i < count {
                if startsSpecial[Int(base[i])],
                    let special = allowed.first(where: { Self.hasPrefix(base, i, count, $0.bytes) })
                {
                    encodeSegment(base, segmentStart, i, into: &out, merger: &merger)
                    out.append(special.id)
                    i += special.bytes.count
                    segmentStart = i
                } else {
                    i += 1
                }
            }
            encodeSegment(base, segmentStart, count, into: &out, merger: &merger)
            return out
        }
    }

    /// The number of tokens `encodeOrdinary` gives.
    public func countTokens(_ text: String) -> Int { encodeOrdinary(text).count }

    /// The bytes of the tokens (special tokens as their text); nil for an unknown id.
    public func decodeBytes(_ tokens: [Int]) -> [UInt8]? {
        var out: [UInt8] = []
        for token in tokens {
            if let bytes = table.bytes(ofRank: token) {
                out.append(contentsOf: bytes)
            } else if let special = specials.first(where: { $0.id == token }) {
                out.append(contentsOf: special.bytes)
            } else {
                return nil
            }
        }
        return out
    }

    private func encodeSegment(
        _ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [Int], merger: inout BytePairMerger
    ) {
        guard start < end else { return }
        // The segment is pre-tokenized on its own: `$` and `(?!\S)` see its end, as in tiktoken.
        let segment = base + start
        let splitter = PreTokenizer(pattern: name.pattern, text: segment, end: end - start)
        var i = 0
        let length = end - start
        while i < length {
            let pieceEnd = splitter.pieceEnd(from: i)
            merger.encode(segment + i, pieceEnd - i, table: table, into: &out)
            i = pieceEnd
        }
    }

    @inline(__always)
    private static func hasPrefix(_ base: UnsafePointer<UInt8>, _ i: Int, _ count: Int, _ bytes: [UInt8]) -> Bool {
        guard count - i >= bytes.count else { return false }
        for (k, b) in bytes.enumerated() where base[i + k] != b { return false }
        return true
    }
}
