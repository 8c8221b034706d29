import LMDB

/// Allocation, private data and freeing.
extension WriteTransaction {
    /// Allocates the lowest free ID in `range` (default `1 … capacity − 1`) to
    /// `set`, with optional private data (kernel `ioasid_alloc`).
    ///
    /// Costs O(log n) at any fill level: the free index is searched, never the allocated IDs.
    ///
    /// With `guest`, the guest ID is attached in the same transaction (BIND follows ALLOC).
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSet``, ``IOASIDError/Code/setFrozen``,
    ///   ``IOASIDError/Code/quotaExceeded``,
    ///   ``IOASIDError/Code/invalidArgument`` (a range outside `1 … capacity − 1`),
    ///   ``IOASIDError/Code/rangeExhausted``, ``IOASIDError/Code/duplicateGuest``.
    public func allocate(in set: SetID, range: ClosedRange<UInt32>? = nil, data: [UInt8] = [], guest: UInt32? = nil) throws -> IOASID {
        try operation {
            var record = try changeableSetRecord(set)
            let capacity = try capacity()
            let range = range ?? 1...(capacity - 1)
            guard range.lowerBound >= 1, range.upperBound <= capacity - 1 else {
                throw IOASIDError(.invalidArgument, "range \(range.lowerBound)…\(range.upperBound) is outside 1…\(capacity - 1)")
            }
            guard record.count < record.quota else {
                throw IOASIDError(.quotaExceeded, "set \(set) is at its quota of \(record.quota)")
            }
            if let guest { try checkGuestFree(guest, in: set) }
            guard let slot = try lowestFreeSlot(in: range.lowerBound, range.upperBound) else {
                throw IOASIDError(.rangeExhausted, "no free ID in \(range.lowerBound)…\(range.upperBound)")
            }
            try place(slot, in: set, record: &record, data: data, guest: guest)
            return IOASID(slot.id)
        }
    }

    /// Takes a free ID for `set`: writes its record (and guest mapping) and commits ALLOC (and BIND).
    func place(_ slot: FreeSlot, in set: SetID, record: inout SetRecord, data: [UInt8], guest: UInt32?) throws {
        let id = IOASID(slot.id)
        try takeFree(slot)
        try txn.put(IDRecord(set: set.rawValue, guest: guest, data: data).encoded(), forKey: id.rawValue, in: schema.ids)
        if let guest { try txn.put(Key.u32(id.rawValue), forKey: Key.pair(set.rawValue, guest), in: schema.guests) }
        record.count += 1
        try putSet(record, set)
        try emit(.alloc, set: set, token: record.token, id: id)
        if let guest { try emit(.bind, set: set, token: record.token, id: id, guest: guest) }
    }

    /// Replaces the private data of an allocated ID (kernel `ioasid_attach_data`).
    ///
    /// - Throws: ``IOASIDError/Code/noSuchID``, ``IOASIDError/Code/wrongSet``.
    public func setData(_ data: [UInt8], for id: IOASID, in set: SetID) throws {
        try operation {
            _ = try changeableSetRecord(set)
            var record = try ownedRecord(id, in: set)
            guard record.state == .allocated else {
                throw IOASIDError(.noSuchID, "ID \(id) has been freed")
            }
            record.data = data
            try txn.put(record.encoded(), forKey: id.rawValue, in: schema.ids)
        }
    }

    /// Frees `id`, which must belong to `set`. Never waits: the ID becomes
    /// free-pending and returns to the pool as soon as nothing holds it back
    /// (at once, when no holder or subscriber is interested).
    /// Freeing an ID that is already free-pending does nothing.
    ///
    /// A guest ID attached to it is detached first (UNBIND before FREE).
    ///
    /// - Returns: `true` if this call freed it, `false` if it was already free-pending.
    /// - Throws: ``IOASIDError/Code/noSuchID``, ``IOASIDError/Code/wrongSet``, ``IOASIDError/Code/setFrozen``.
    @discardableResult
    public func free(_ id: IOASID, in set: SetID) throws -> Bool {
        try operation {
            _ = try changeableSetRecord(set)
            _ = try ownedRecord(id, in: set)
            return try free(id, owner: set)
        }
    }

    /// Frees an ID of `owner`: commits its FREE, then reclaims it at once when
    /// no holder or interested subscriber holds it back, or marks it free-pending.
    func free(_ id: IOASID, owner: SetID) throws -> Bool {
        guard var record = try idRecord(id) else { throw IOASIDError(.noSuchID, "ID \(id) is not allocated") }
        if record.state == .freePending { return false }
        var set = try setRecord(owner)
        try unbindOnFree(id, record: &record, token: set.token)
        let sequence = try emit(.free, set: owner, token: set.token, id: id)
        let held = try !holders(of: id).isEmpty
        if sequence != nil || held {
            record.state = .freePending
            try txn.put(record.encoded(), forKey: id.rawValue, in: schema.ids)
            var w = ByteWriter()
            w.u64(sequence ?? 0)
            try txn.put(w.bytes, forKey: id.rawValue, in: schema.pending)
            set.pending += 1
            try putSet(set, owner)
        } else {
            try reclaim(id, record: record, wasPending: false)
        }
        return true
    }

    /// Returns a free-pending ID to the pool when nothing holds it back any more.
    ///
    /// - Returns: whether the ID was reclaimed.
    @discardableResult
    func reclaimIfReleased(_ id: IOASID) throws -> Bool {
        guard let record = try idRecord(id), record.state == .freePending else { return false }
        guard try !isHeldBack(id, set: SetID(record.set)) else { return false }
        try reclaim(id, record: record, wasPending: true)
        return true
    }

    /// Removes the ID from its set, returns it to the free index and commits RECLAIM.
    private func reclaim(_ id: IOASID, record: IDRecord, wasPending: Bool) throws {
        let owner = SetID(record.set)
        var set = try setRecord(owner)
        guard set.count > 0, !wasPending || set.pending > 0 else {
            throw IOASIDError(.corruptStore, "set \(owner)'s counters do not include ID \(id); run ioasid verify --repair")
        }
        try txn.delete(id.rawValue, in: schema.ids)
        if wasPending { try txn.delete(id.rawValue, in: schema.pending) }
        try giveFree(id.rawValue...id.rawValue)
        set.count -= 1
        if wasPending { set.pending -= 1 }
        try putSet(set, owner)
        try emit(.reclaim, set: owner, token: set.token, id: id)
        _ = try finishDestroyIfEmpty(owner)
    }

    /// The record of an ID that `set` owns.
    func ownedRecord(_ id: IOASID, in set: SetID) throws -> IDRecord {
        guard let record = try idRecord(id) else { throw IOASIDError(.noSuchID, "ID \(id) is not allocated") }
        guard record.set == set.rawValue else {
            throw IOASIDError(.wrongSet, "ID \(id) does not belong to set \(set)")
        }
        return record
    }
}
