/// The mergeable tokens of an encoding: byte sequences to ranks (an open-addressing hash table
/// over one contiguous byte store) and ranks back to bytes.
///
/// Immutable after `init`; lookups take a pointer to the bytes so the encoder never builds an
/// array or string per piece.
final class RankTable: @unchecked Sendable {
    static let noRank = UInt32.max

    /// Every token's bytes, one after another.
    private let store: UnsafeMutablePointer<UInt8>
    /// Per entry: offset into `store`, length, rank, the first 8 bytes packed, and the hash.
    private let offsets: UnsafeMutablePointer<UInt32>
    private let lengths: UnsafeMutablePointer<UInt32>
    private let ranks: UnsafeMutablePointer<UInt32>
    private let heads: UnsafeMutablePointer<UInt64>
    /// Slots hold an entry index + 1 (0 is empty).
    private let slots: UnsafeMutablePointer<UInt32>
    private let mask: Int
    /// The rank of every two-byte sequence (`noRank` when there is none), the commonest lookup.
    private let pairs: UnsafeMutablePointer<UInt32>
    /// The entry of each rank (`UInt32.max` for unused ranks).
    private let entryOfRank: UnsafeMutablePointer<UInt32>
    let count: Int
    let rankLimit: Int
    private let storeSize: Int

    /// Builds the table from parsed rank-file entries; throws on duplicate tokens or ranks.
    init(_ parsed: RankFile.Parsed) throws {
        let entries = parsed.entries
        count = entries.count
        storeSize = parsed.bytes.count
        store = .allocate(capacity: max(storeSize, 1))
        offsets = .allocate(capacity: max(count, 1))
        lengths = .allocate(capacity: max(count, 1))
        ranks = .allocate(capacity: max(count, 1))
        heads = .allocate(capacity: max(count, 1))
        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: 0, count: capacity)
        pairs = .allocate(capacity: 65536)
        pairs.initialize(repeating: Self.noRank, count: 65536)
        rankLimit = Int(entries.map(\.rank).max() ?? 0) + 1
        entryOfRank = .allocate(capacity: rankLimit)
        entryOfRank.initialize(repeating: UInt32.max, count: rankLimit)

        if storeSize > 0 {
            parsed.bytes.withUnsafeBufferPointer { store.initialize(from: $0.baseAddress!, count: storeSize) }
        }
        for (index, entry) in entries.enumerated() {
            let length = entry.length
            let offset = entry.start
            guard length > 0 else { throw TokenizerError(.malformed, "an empty token has rank \(entry.rank)") }
            offsets[index] = UInt32(offset)
            lengths[index] = UInt32(length)
            ranks[index] = entry.rank
            let bytes = UnsafePointer(store + offset)
            heads[index] = Self.head(bytes, length)
            guard entryOfRank[Int(entry.rank)] == UInt32.max else {
                throw TokenizerError(.malformed, "rank \(entry.rank) is given to two tokens")
            }
            entryOfRank[Int(entry.rank)] = UInt32(index)
            var slot = Self.hash(bytes, length) & mask
            while slots[slot] != 0 {
                let other = Int(slots[slot] - 1)
                if lengths[other] == length, equal(other, bytes, length) {
                    throw TokenizerError(.malformed, "a token appears twice (ranks \(ranks[other]) and \(entry.rank))")
                }
                slot = (slot + 1) & mask
            }
            slots[slot] = UInt32(index + 1)
            if length == 2 { pairs[Int(bytes[0]) << 8 | Int(bytes[1])] = entry.rank }
        }
    }

    deinit {
        store.deallocate()
        offsets.deallocate()
        lengths.deallocate()
        ranks.deallocate()
        heads.deallocate()
        slots.deallocate()
        pairs.deallocate()
        entryOfRank.deallocate()
    }

    /// The rank of `bytes[0..<length]`, or `noRank`.
    @inline(__always)
    func rank(_ bytes: UnsafePointer<UInt8>, _ length: Int) -> UInt32 {
        if length == 2 { return pairs[Int(bytes[0]) << 8 | Int(bytes[1])] }
        let head = Self.head(bytes, length)
        var slot = Self.hash(bytes, length, head: head) & mask
        while true {
            let stored = slots[slot]
            if stored == 0 { return Self.noRank }
            let index = Int(stored - 1)
            if heads[index] == head, lengths[index] == length, length <= 8 || equal(index, bytes, length) {
                return ranks[index]
            }
            slot = (slot + 1) & mask
        }
    }

    /// The bytes of a rank, or nil when no token has it.
    func bytes(ofRank rank: Int) -> UnsafeBufferPointer<UInt8>? {
        guard rank >= 0, rank < rankLimit else { return nil }
        let index = entryOfRank[rank]
        guard index != UInt32.max else { return nil }
        return UnsafeBufferPointer(start: store + Int(offsets[Int(index)]), count: Int(lengths[Int(index)]))
    }

    @inline(__always)
    private func equal(_ index: Int, _ bytes: UnsafePointer<UInt8>, _ length: Int) -> Bool {
        let stored = store + Int(offsets[index])
        for i in 0..<length where stored[i] != bytes[i] { return false }
        return true
    }

    /// The first (up to) 8 bytes, little-endian, zero-padded.
    @inline(__always)
    private static func head(_ bytes: UnsafePointer<UInt8>, _ length: Int) -> UInt64 {
        if length >= 8 { return UnsafeRawPointer(bytes).loadUnaligned(as: UInt64.self) }
        var value: UInt64 = 0
        for i in 0..<length { value |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        return value
    }

    @inline(__always)
    private static func hash(_ bytes: UnsafePointer<UInt8>, _ length: Int) -> Int {
        hash(bytes, length, head: head(bytes, length))
    }

    /// A multiplicative hash of the head, the length and the remaining 8-byte words.
    @inline(__always)
    private static func hash(_ bytes: UnsafePointer<UInt8>, _ length: Int, head: UInt64) -> Int {
        let k: UInt64 = 0x9E37_79B9_7F4A_7C15
        var h = (head ^ UInt64(length)) &* k
        var i = 8
        let raw = UnsafeRawPointer(bytes)
        while i < length {
            let word: UInt64
            if i + 8 <= length {
                word = (raw + i).loadUnaligned(as: UInt64.self)
            } else {
                var w: UInt64 = 0
                for j in i..<length { w |= UInt64(bytes[j]) << (8 * UInt64(j - i)) }
                word = w
            }
            h = ((h ^ (h >> 29)) ^ word) &* k
            i += 8
        }
        return Int(truncatingIfNeeded: h ^ (h >> 32))
    }
}
