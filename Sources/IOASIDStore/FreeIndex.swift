import IOASIDMigrations
import LMDB

/// The persistent free index: free IDs kept as maximal extents `first…last`
/// in the `control` database, keyed by their **last** ID (`0x02 ‖ last` →
/// `first`, see ``StoreLayout``).
///
/// Keyed by the last ID, the extent holding the lowest free ID at or above
/// `n` is the first key at or after `n`: one seek. Taking the lowest ID of an
/// extent rewrites its value in place (same key), and returning an ID touches
/// at most two extents, so every operation is O(log n) in the number of
/// extents whatever the fill level; a fresh store of 2^20 IDs is one record.
/// The extents sort right after the set records, so an allocation of the
/// lowest free ID usually dirties one page of `control`.
struct FreeSlot {
    /// The free ID.
    let id: UInt32
    /// The extent that holds it.
    let extent: ClosedRange<UInt32>
}

extension IOASIDReading where Self: ~Copyable {
    /// The lowest free ID in `lower…upper`, with its extent.
    func lowestFreeSlot(in lower: UInt32, _ upper: UInt32) throws -> FreeSlot? {
        guard let extent = try extent(atOrAfter: lower) else { return nil }
        let id = max(extent.lowerBound, lower)
        return id <= upper ? FreeSlot(id: id, extent: extent) : nil
    }

    /// The extent with the least last ID ≥ `id` (with its start as this
    /// transaction moved it, when it did).
    private func extent(atOrAfter id: UInt32) throws -> ClosedRange<UInt32>? {
        let found = try txn.withCursor(on: schema.control) { cursor in
            try cursor.withEntry(atOrAfter: StoreLayout.extentKey(last: id)) { entry in try Self.extent(entry) }
        } ?? nil
        if let found, let pending = context.state.pendingExtent, pending.last == found.upperBound {
            return pending.first...pending.last
        }
        return found
    }

    /// The error for `id` when it has no record (kernel `ioasid_find` finding nothing).
    ///
    /// Every ID of 1 … capacity − 1 is either recorded or in one free extent, so an ID in
    /// range that the free index does not hold either was lost by damage — LMDB keeps no
    /// checksum of its pages, and a flipped bit in a page of `ids` can hide a record from a
    /// lookup. That is reported as a corrupt store, never as "not allocated".
    ///
    /// - Returns: ``IOASIDError/Code-swift.struct/noSuchID``, or ``IOASIDError/Code-swift.struct/corruptStore``.
    func notAllocated(_ id: IOASID) throws -> IOASIDError {
        let absent = IOASIDError(.noSuchID, "ID \(id) is not allocated")
        guard id.rawValue >= 1, id.rawValue < (try capacity()) else { return absent }
        if try lowestFreeSlot(in: id.rawValue, id.rawValue) != nil { return absent }
        return IOASIDError(
            .corruptStore,
            "ID \(id) is neither allocated nor free: database ids has lost its record, or the free index is wrong (the store is damaged)"
        )
    }

    /// Decodes an extent entry; `nil` for an entry that is not an extent (past the free index).
    static func extent(_ entry: borrowing CursorEntry) throws -> ClosedRange<UInt32>? {
        guard entry.keyByte(at: 0) == StoreLayout.ControlTag.free else { return nil }
        guard entry.keyCount == 5, let last = entry.keyU32(at: 1) else {
            throw IOASIDError.undecodable(database: "control", key: entry.keyBytes())
        }
        guard var reader = entry.sealedReader() else {
            throw IOASIDError(.corruptStore, "the free extent ending at \(last) in database control is damaged (checksum mismatch)")
        }
        guard let first = try? reader.u32(), reader.remaining == 0, first <= last else {
            throw IOASIDError.undecodable(database: "control", key: entry.keyBytes())
        }
        return first...last
    }
}

extension WriteTransaction {
    /// Removes a free ID, found by ``IOASIDReading/lowestFreeSlot(in:_:)`` in
    /// this transaction, from the index.
    func takeFree(_ slot: FreeSlot) throws {
        let id = slot.id, first = slot.extent.lowerBound, last = slot.extent.upperBound
        if id == first, first < last {
            // The common case, the lowest free ID: the extent keeps its key and
            // only its start moves, so it is written once, before the commit.
            if let pending = context.state.pendingExtent, pending.last != last { try flushPendingExtent() }
            context.state.deferExtent(last: last, first: id + 1)
            return
        }
        try flushPendingExtent()
        if first == last {
            try remove(StoreLayout.extentKey(last: last), in: schema.control)
        } else if id == last {
            try remove(StoreLayout.extentKey(last: last), in: schema.control)
            try putExtent(first: first, last: id - 1)
        } else {
            try putExtent(first: id + 1, last: last)
            try putExtent(first: first, last: id - 1)
        }
    }

    /// Takes the lowest IDs of `slot`'s extent, through `last`, from the index in one step.
    func takeFreePrefix(through last: UInt32, of slot: FreeSlot) throws {
        try flushPendingExtent()
        if last < slot.extent.upperBound {
            try putExtent(first: last + 1, last: slot.extent.upperBound)
        } else {
            try remove(StoreLayout.extentKey(last: slot.extent.upperBound), in: schema.control)
        }
    }

    /// Returns `ids` (none of which may be free) to the index, merging with neighbours.
    func giveFree(_ ids: ClosedRange<UInt32>) throws {
        try flushPendingExtent()
        let lower = ids.lowerBound, upper = ids.upperBound
        let (before, after) = try txn.withCursor(on: schema.control) { cursor -> (ClosedRange<UInt32>?, ClosedRange<UInt32>?) in
            // Extents are the last keys of `control`: an entry at or after `0x02 ‖ lower` is one.
            let found: ClosedRange<UInt32>?? = try cursor.withEntry(atOrAfter: StoreLayout.extentKey(last: lower)) { try Self.extent($0) }
            let previous: ClosedRange<UInt32>?? = found != nil
                ? try cursor.withPrevious { try Self.extent($0) }
                : try cursor.withLast { try Self.extent($0) }
            return ((previous ?? nil), (found ?? nil))
        }
        if let after, after.lowerBound <= upper {
            throw IOASIDError(.corruptStore, "ID \(max(after.lowerBound, lower)) is already in the free index")
        }
        // The neighbours that touch `ids` merge with it.
        let touchingBefore = before.flatMap { lower > 0 && $0.upperBound == lower - 1 ? $0 : nil }
        let touchingAfter = after.flatMap { upper < .max && $0.lowerBound == upper + 1 ? $0 : nil }
        switch (touchingBefore, touchingAfter) {
        case let (before?, after?):
            try remove(StoreLayout.extentKey(last: before.upperBound), in: schema.control)
            try putExtent(first: before.lowerBound, last: after.upperBound)
        case let (before?, nil):
            try remove(StoreLayout.extentKey(last: before.upperBound), in: schema.control)
            try putExtent(first: before.lowerBound, last: upper)
        case let (nil, after?):
            try putExtent(first: lower, last: after.upperBound)  // same key: rewritten in place
        case (nil, nil):
            try putExtent(first: lower, last: upper)
        }
    }

    /// Drops every free ID at or above `limit`.
    func truncateFree(below limit: UInt32) throws {
        try flushPendingExtent()
        while let last = try txn.withCursor(on: schema.control, { cursor in try cursor.withLast { try Self.extent($0) } ?? nil }),
            last.upperBound >= limit
        {
            try remove(StoreLayout.extentKey(last: last.upperBound), in: schema.control)
            if last.lowerBound < limit { try putExtent(first: last.lowerBound, last: limit - 1) }
        }
    }

    func putExtent(first: UInt32, last: UInt32) throws {
        try flushPendingExtent()
        try put(ByteWriter.u32(first), StoreLayout.extentKey(last: last), in: schema.control)
    }
}
