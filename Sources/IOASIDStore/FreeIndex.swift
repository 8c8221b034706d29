import LMDB

/// The persistent free index: free IDs kept as extents `[first, last]` in the
/// `control` database (key `0x02 ‖ first`, value `last`, both big-endian).
///
/// Finding the lowest free ID in a range is two cursor seeks, and taking or
/// returning an ID touches at most three extents, so every operation is
/// O(log n) in the number of extents whatever the fill level, and a fresh
/// store of 2^20 IDs is a single record. The extents sort right after the set
/// records, so an allocation of the lowest free ID usually dirties one page of
/// `control` for both its set's count and the extent it takes from.
/// A free ID and the extent that holds it, as found by a lookup, so that
/// taking it needs no second lookup.
struct FreeSlot {
    let id: UInt32
    let extent: ClosedRange<UInt32>
}

extension WriteTransaction {
    private var db: Database { schema.control }

    /// `id` with its extent, if `id` is free.
    func freeSlot(for id: UInt32) throws -> FreeSlot? {
        guard let range = try extent(atOrBefore: id), range.contains(id) else { return nil }
        return FreeSlot(id: id, extent: range)
    }

    /// The lowest free ID in `lower...upper`, with its extent.
    func lowestFreeSlot(in lower: UInt32, _ upper: UInt32) throws -> FreeSlot? {
        if let range = try extent(atOrBefore: lower), range.upperBound >= lower { return FreeSlot(id: lower, extent: range) }
        guard let next = try extent(atOrAfter: lower), next.lowerBound <= upper else { return nil }
        return FreeSlot(id: next.lowerBound, extent: next)
    }

    /// Removes a free ID, found by ``freeSlot(for:)`` or ``lowestFreeSlot(in:_:)`` in this transaction, from the index.
    func takeFree(_ slot: FreeSlot) throws {
        let id = slot.id, range = slot.extent
        try txn.delete(Key.free(range.lowerBound), in: db)
        if range.lowerBound < id { try putExtent(range.lowerBound...(id - 1)) }
        if id < range.upperBound { try putExtent((id + 1)...range.upperBound) }
    }

    /// Returns `ids` (none of which may be free) to the index, merging with neighbours.
    func giveFree(_ ids: ClosedRange<UInt32>) throws {
        var first = ids.lowerBound
        var last = ids.upperBound
        if let before = try extent(atOrBefore: first) {
            if before.upperBound >= first {
                throw IOASIDError(.corruptStore, "ID \(first) is already in the free index")
            }
            if before.upperBound == first - 1 {
                first = before.lowerBound
                try txn.delete(Key.free(before.lowerBound), in: db)
            }
        }
        if let after = try extent(atOrAfter: ids.lowerBound) {
            if after.lowerBound <= last {
                throw IOASIDError(.corruptStore, "ID \(after.lowerBound) is already in the free index")
            }
            if last < .max, after.lowerBound == last + 1 {
                last = after.upperBound
                try txn.delete(Key.free(after.lowerBound), in: db)
            }
        }
        try putExtent(first...last)
    }

    /// Drops every free ID at or above `limit`.
    func truncateFree(below limit: UInt32) throws {
        while let range = try extent(atOrBefore: .max), range.upperBound >= limit {
            try txn.delete(Key.free(range.lowerBound), in: db)
            if range.lowerBound < limit { try putExtent(range.lowerBound...(limit - 1)) }
        }
    }

    // MARK: Extents

    /// The extent with the greatest first ID ≤ `id`.
    private func extent(atOrBefore id: UInt32) throws -> ClosedRange<UInt32>? {
        try txn.withCursor(on: db) { cursor in
            guard let e = try cursor.seek(atOrBefore: Key.free(id)), e.key.first == ControlTag.free else { return nil }
            return try decode(e)
        }
    }

    /// The extent with the least first ID ≥ `id`.
    private func extent(atOrAfter id: UInt32) throws -> ClosedRange<UInt32>? {
        try txn.withCursor(on: db) { cursor in
            guard let e = try cursor.seek(atOrAfter: Key.free(id)), e.key.first == ControlTag.free else { return nil }
            return try decode(e)
        }
    }

    private func putExtent(_ range: ClosedRange<UInt32>) throws {
        try txn.put(Key.u32(range.upperBound), forKey: Key.free(range.lowerBound), in: db)
    }

    private func decode(_ e: Entry) throws -> ClosedRange<UInt32> {
        guard e.key.count == 5, e.value.count == 4, let first = Key.decodeU32(e.key, at: 1),
            let last = Key.decodeU32(e.value), first <= last
        else { throw IOASIDError(.corruptStore, "malformed free-index extent") }
        return first...last
    }
}
