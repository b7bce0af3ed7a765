/// tiktoken's byte-pair merge of one piece: start from single bytes and repeatedly merge the
/// adjacent pair whose concatenation has the lowest rank (the leftmost on ties) until no pair
/// is a token. Scratch space is reused across pieces, so an encode allocates it once.
struct BytePairMerger: ~Copyable {
    private var starts: UnsafeMutablePointer<Int>
    private var ranks: UnsafeMutablePointer<UInt32>
    private var capacity: Int

    init() {
        capacity = 64
        starts = .allocate(capacity: capacity)
        ranks = .allocate(capacity: capacity)
    }

    deinit {
        starts.deallocate()
        ranks.deallocate()
    }

    /// Appends the tokens of `piece[0..<length]` to `out`.
    mutating func encode(
        _ piece: UnsafePointer<UInt8>, _ length: Int, table: RankTable, into out: inout [Int]
    ) {
        if length == 1 {
            out.append(Int(table.rank(piece, 1)))
            return
        }
        let whole = table.rank(piece, length)
        if whole != RankTable.noRank {
            out.append(Int(whole))
            return
        }
        if length + 1 > capacity {
            starts.deallocate()
            ranks.deallocate()
            while capacity < length + 1 { capacity *= 2 }
            starts = .allocate(capacity: capacity)
            ranks = .allocate(capacity: capacity)
        }
        let boundaries = merge(piece, length, table: table)
        for k in 0..<(boundaries - 1) {
            out.append(Int(table.rank(piece + starts[k], starts[k + 1] - starts[k])))
        }
    }

    /// Merges in place; returns the number of part boundaries left (parts + 1).
    @inline(__always)
    private func merge(_ piece: UnsafePointer<UInt8>, _ length: Int, table: RankTable) -> Int {
        // ranks[i] is the rank of merging part i with part i + 1.
        var minRank = RankTable.noRank
        var minIndex = 0
        for i in 0..<(length - 1) {
            let rank = table.rank(piece + i, 2)
            if rank < minRank {
                minRank = rank
                minIndex = i
            }
            starts[i] = i
            ranks[i] = rank
        }
        starts[length - 1] = length - 1
        ranks[length - 1] = RankTable.noRank
        starts[length] = length
        ranks[length] = RankTable.noRank
        var count = length + 1

        @inline(__always) func rankAfterMerge(_ i: Int) -> UInt32 {
            // The rank of part i followed by parts i + 1 and i + 2 (which are about to merge).
            i + 3 < count ? table.rank(piece + starts[i], starts[i + 3] - starts[i]) : RankTable.noRank
        }

        while minRank != RankTable.noRank {
            let i = minIndex
            if i > 0 { ranks[i - 1] = rankAfterMerge(i - 1) }
            ranks[i] = rankAfterMerge(i)
            // Remove boundary i + 1.
            (starts + i + 1).update(from: starts + i + 2, count: count - i - 2)
            (ranks + i + 1).update(from: ranks + i + 2, count: count - i - 2)
            count -= 1
            minRank = RankTable.noRank
            for j in 0..<(count - 1) where ranks[j] < minRank {
                minRank = ranks[j]
                minIndex = j
            }
        }
        return count
    }
}
