import LMDB

/// The persistent free index: free IDs kept as extents `[first, last]` in the
/// `free` database (key = first, value = last, both big-endian).
///
/// Finding the lowest free ID in a range is two cursor seeks, and taking or
/// returning an ID touches at most three extents, so every operation is
/// O(log n) in the number of extents whatever the fill level, and a fresh
/// store of 2^20 IDs is a single record.
struct FreeIndex {
    let txn: Transaction
    let db: Database

    /// The extent that contains `id`, if `id` is free.
    func extent(containing id: UInt32) throws -> ClosedRange<UInt32>? {
        try txn.withCursor(on: db) { cursor in
            guard let e = try cursor.seek(atOrBefore: Key.u32(id)) else { return nil }
            let range = try decode(e)
            return range.contains(id) ? range : nil
        }
    }

    /// The lowest free ID in `lower...upper`.
    func lowestFree(in lower: UInt32, _ upper: UInt32) throws -> UInt32? {
        try txn.withCursor(on: db) { cursor in
            if let e = try cursor.seek(atOrBefore: Key.u32(lower)) {
                let range = try decode(e)
                if range.upperBound >= lower { return lower }
            }
            guard let e = try cursor.seek(atOrAfter: Key.u32(lower)) else { return nil }
            let first = try decode(e).lowerBound
            return first <= upper ? first : nil
        }
    }

    /// Removes `id` from the free index; it must be free.
    func take(_ id: UInt32) throws {
        guard let range = try extent(containing: id) else {
            throw IOASIDError(.corruptStore, "free index does not hold ID \(id)")
        }
        try txn.delete(Key.u32(range.lowerBound), in: db)
        if range.lowerBound < id { try put(range.lowerBound...(id - 1)) }
        if id < range.upperBound { try put((id + 1)...range.upperBound) }
    }

    /// Returns `ids` (which must not be free) to the index, merging with neighbours.
    func give(_ ids: ClosedRange<UInt32>) throws {
        var first = ids.lowerBound
        var last = ids.upperBound
        if first > 0, let before = try txn.withCursor(on: db, { try $0.seek(atOrBefore: Key.u32(first)) }) {
            let range = try decode(before)
            if range.upperBound >= first {
                throw IOASIDError(.corruptStore, "ID \(first) is already in the free index")
            }
            if range.upperBound == first - 1 {
                first = range.lowerBound
                try txn.delete(before.key, in: db)
            }
        }
        if let after = try txn.withCursor(on: db, { try $0.seek(atOrAfter: Key.u32(ids.lowerBound)) }) {
            let range = try decode(after)
            if range.lowerBound <= last {
                throw IOASIDError(.corruptStore, "ID \(range.lowerBound) is already in the free index")
            }
            if last < UInt32.max, range.lowerBound == last + 1 {
                last = range.upperBound
                try txn.delete(after.key, in: db)
            }
        }
        try put(first...last)
    }

    /// Drops every free ID at or above `limit`.
    func truncate(below limit: UInt32) throws {
        while let e = try txn.withCursor(on: db, { try $0.last() }) {
            let range = try decode(e)
            if range.upperBound < limit { return }
            try txn.delete(e.key, in: db)
            if range.lowerBound < limit { try put(range.lowerBound...(limit - 1)) }
        }
    }

    /// Every extent in order (for verification and tests).
    func extents() throws -> [ClosedRange<UInt32>] {
        try txn.withCursor(on: db) { cursor in
            var result: [ClosedRange<UInt32>] = []
            var entry = try cursor.first()
            while let e = entry {
                result.append(try decode(e))
                entry = try cursor.next()
            }
            return result
        }
    }

    private func put(_ range: ClosedRange<UInt32>) throws {
        try txn.put(Key.u32(range.upperBound), forKey: Key.u32(range.lowerBound), in: db)
    }

    private func decode(_ e: Entry) throws -> ClosedRange<UInt32> {
        guard e.key.count == 4, e.value.count == 4, let first = Key.decodeU32(e.key), let last = Key.decodeU32(e.value),
            first <= last
        else { throw IOASIDError(.corruptStore, "malformed free-index extent") }
        return first...last
    }
}
