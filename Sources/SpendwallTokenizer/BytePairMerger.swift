/// tiktoken's byte-pair merge of one piece: start from single bytes and repeatedly merge the
/// adjacent pair whose concatenation has the lowest rank (the leftmost on ties) until no pair
/// is a token. Scratch space is reused across pieces, so an encode allocates it once.
///
/// Short pieces use tiktoken's linear scan; pieces longer than ``heapThreshold`` bytes use a
/// heap keyed by (rank, start), which picks the same pair at every step (lowest rank, leftmost
/// on ties) in O(n log n) rather than O(n²), so a long run of letters cannot stall a check.
struct BytePairMerger: ~Copyable {
    /// Pieces longer than this many bytes take the heap path.
    let heapThreshold: Int

    private var starts: UnsafeMutablePointer<Int>
    private var ranks: UnsafeMutablePointer<UInt32>
    private var capacity: Int
    /// The heap path's scratch: next part, previous part, and heap entries.
    private var next: UnsafeMutablePointer<Int> = .allocate(capacity: 1)
    private var previous: UnsafeMutablePointer<Int> = .allocate(capacity: 1)
    private var heap: UnsafeMutablePointer<UInt64> = .allocate(capacity: 1)
    private var heapCapacity = 0

    init(heapThreshold: Int = 256) {
        self.heapThreshold = heapThreshold
        capacity = 64
        starts = .allocate(capacity: capacity)
        ranks = .allocate(capacity: capacity)
    }

    deinit {
        starts.deallocate()
        ranks.deallocate()
        next.deallocate()
        previous.deallocate()
        heap.deallocate()
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
        if length > heapThreshold {
            mergeWithHeap(piece, length, table: table, into: &out)
            return
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

    /// The same merges as `merge`, for long pieces. Parts are a linked list over byte offsets;
    /// `ranks[s]` is the rank of merging the part starting at `s` with the next one (`noRank`
    /// when there is none or the part is gone). Heap entries are `rank << 32 | start`, so the
    /// smallest is the lowest rank and, among equals, the leftmost; entries whose rank is no
    /// longer current are skipped when popped.
    private mutating func mergeWithHeap(
        _ piece: UnsafePointer<UInt8>, _ length: Int, table: RankTable, into out: inout [Int]
    ) {
        if heapCapacity < 3 * length {
            next.deallocate()
            previous.deallocate()
            heap.deallocate()
            heapCapacity = 3 * length
            next = .allocate(capacity: heapCapacity)
            previous = .allocate(capacity: heapCapacity)
            heap = .allocate(capacity: heapCapacity)
        }
        let heap = self.heap
        let next = self.next
        let previous = self.previous
        let ranks = self.ranks
        var heapCount = 0
        func push(_ rank: UInt32, _ start: Int) {
            var i = heapCount
            let entry = UInt64(rank) << 32 | UInt64(start)
            heapCount += 1
            while i > 0 {
                let parent = (i - 1) / 2
                if heap[parent] <= entry { break }
                heap[i] = heap[parent]
                i = parent
            }
            heap[i] = entry
        }
        func pop() -> UInt64 {
            let top = heap[0]
            heapCount -= 1
            let last = heap[heapCount]
            var i = 0
            while true {
                var child = 2 * i + 1
                if child >= heapCount { break }
                if child + 1 < heapCount, heap[child + 1] < heap[child] { child += 1 }
                if last <= heap[child] { break }
                heap[i] = heap[child]
                i = child
            }
            if heapCount > 0 { heap[i] = last }
            return top
        }

        for i in 0..<length {
            next[i] = i + 1
            previous[i] = i - 1
            let rank = i + 1 < length ? table.rank(piece + i, 2) : RankTable.noRank
            ranks[i] = rank
            if rank != RankTable.noRank { push(rank, i) }
        }
        while heapCount > 0 {
            let entry = pop()
            let start = Int(entry & 0xFFFF_FFFF)
            let rank = UInt32(entry >> 32)
            guard ranks[start] == rank else { continue }  // stale
            let removed = next[start]
            let after = next[removed]
            next[start] = after
            if after < length { previous[after] = start }
            ranks[removed] = RankTable.noRank
            let merged =
                after < length ? table.rank(piece + start, next[after] - start) : RankTable.noRank
            ranks[start] = merged
            if merged != RankTable.noRank { push(merged, start) }
            let before = previous[start]
            if before >= 0 {
                let rank = table.rank(piece + before, after - before)
                ranks[before] = rank
                if rank != RankTable.noRank { push(rank, before) }
            }
        }
        var part = 0
        while part < length {
            out.append(Int(table.rank(piece + part, next[part] - part)))
            part = next[part]
        }
    }
}
