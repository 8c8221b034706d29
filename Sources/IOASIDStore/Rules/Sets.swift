import IOASIDMigrations
import LMDB

/// Sets: per-VM namespaces with an owner token and a quota reserved from capacity.
extension IOASIDReading where Self: ~Copyable {
    /// The record of a set that is live (not destroyed or waiting to be).
    func liveSetRecord(_ id: SetID) throws -> SetRecord {
        let record = try setRecord(id)
        guard record.isLive else { throw IOASIDError(.noSuchSet, "set \(id) has been destroyed") }
        return record
    }

    /// The record of `id` after the ownership check (kernel `-EACCES`): the one
    /// definition of "this ID belongs to that set". An ID without a record is
    /// ``notAllocated(_:)``: not allocated, or a damaged store.
    @inline(__always)
    func ownedRecord(_ id: IOASID, in set: SetID) throws -> IDRecord {
        guard let record = try idRecord(id) else { throw try notAllocated(id) }
        guard record.set == set.rawValue else {
            throw IOASIDError(.wrongSet, "ID \(id) does not belong to set \(set)")
        }
        return record
    }
}

extension WriteTransaction {
    /// Creates a set owned by `token` whose `quota` is reserved from capacity
    /// (kernel `ioasid_alloc_set`).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/invalidArgument`` (quota 0, a token that is
    ///   not a name — see ``Names``), ``IOASIDError/Code-swift.struct/duplicateToken``,
    ///   ``IOASIDError/Code-swift.struct/capacityExhausted``.
    public func createSet(token: String, quota: UInt32) throws -> SetID {
        try createSet(token: token, quota: quota, tokenMayPredateRule: false)
    }

    /// ``createSet(token:quota:)``; with `tokenMayPredateRule`, a token another store accepted
    /// before separators and bidirectional controls were refused (an import's header token:
    /// see ``Names``) is checked for control characters only, so such a set can still move.
    func createSet(token: String, quota: UInt32, tokenMayPredateRule: Bool) throws -> SetID {
        try operation {
            try Names.check(token, as: "token", existing: tokenMayPredateRule)
            guard quota > 0 else { throw IOASIDError(.invalidArgument, "quota must be at least 1") }
            if let existing = try set(withToken: token) {
                throw IOASIDError(.duplicateToken, "token \"\(Names.escaped(token))\" already owns set \(existing.id)")
            }
            try checkFitsUnreserved(UInt64(quota), what: "quota \(quota)")
            guard let next = try metaU32(StoreLayout.MetaKey.nextSetID), next > SetID.system.rawValue, next < .max else {
                throw IOASIDError(.corruptStore, "the next set ID is missing or exhausted")
            }
            try putMeta(StoreLayout.MetaKey.nextSetID, u32: next + 1)
            putSet(SetRecord(token: token, quota: quota), SetID(next))
            try put(ByteWriter.u32(next), StoreLayout.tokenKey(token), in: schema.tokens)
            try putReserved(try reservedQuota() + UInt64(quota))
            try emit(.setCreate, set: SetID(next), token: token, quota: quota)
            return SetID(next)
        }
    }

    /// Changes a set's quota (kernel `ioasid_adjust_set`). A decrease returns
    /// capacity to the pool; an increase must fit in unreserved capacity
    /// (the *delta* is compared, not the whole quota).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSet``, ``IOASIDError/Code-swift.struct/setFrozen``,
    ///   ``IOASIDError/Code-swift.struct/invalidArgument`` (quota 0),
    ///   ``IOASIDError/Code-swift.struct/quotaBelowUsage``, ``IOASIDError/Code-swift.struct/capacityExhausted``.
    public func adjustQuota(of set: SetID, to quota: UInt32) throws {
        try operation {
            var record = try changeableSetRecord(set)
            guard quota > 0 else { throw IOASIDError(.invalidArgument, "quota must be at least 1") }
            guard quota >= record.count else {
                throw IOASIDError(.quotaBelowUsage, "set \(set) holds \(record.count) IDs; quota \(quota) is below that")
            }
            if quota == record.quota { return }  // no change, no event
            if quota > record.quota { try checkFitsUnreserved(UInt64(quota - record.quota), what: "raising the quota by \(quota - record.quota)") }
            let reserved = try reservedQuota()
            guard reserved >= UInt64(record.quota) else {
                throw IOASIDError(.corruptStore, "the reserved total \(reserved) is below set \(set)'s quota \(record.quota)")
            }
            try putReserved(reserved - UInt64(record.quota) + UInt64(quota))
            record.quota = quota
            putSet(record, set)
            try emit(.setQuota, set: set, token: record.token, quota: quota)
        }
    }

    /// Frees every allocated ID of the set (kernel `ioasid_free_set`), and with
    /// `destroy` removes the set: its token is released at once, its quota
    /// returns when its last ID has been reclaimed.
    ///
    /// Without `destroy`, the set (and its ID) can be used again.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSet``, ``IOASIDError/Code-swift.struct/setFrozen``,
    ///   ``IOASIDError/Code-swift.struct/systemSetProtected``.
    @discardableResult
    public func freeSet(_ set: SetID, destroy: Bool) throws -> FreeSetResult {
        try operation {
            var record = try changeableSetRecord(set)
            if destroy { try checkNotSystem(set, record, doing: "destroyed") }
            var toFree: [IOASID] = []
            try forEachID(in: set) { id in
                toFree.append(id)
                return true
            }
            var freed: [IOASID] = []
            for id in toFree where try free(id, owner: set) {
                freed.append(id)
            }
            guard destroy else {
                if !freed.isEmpty { try emit(.setFree, set: set, token: record.token, destroy: false) }
                return FreeSetResult(freed: freed, destroyed: false)
            }
            record = try setRecord(set)
            try emit(.setFree, set: set, token: record.token, destroy: true)
            try remove(StoreLayout.tokenKey(record.token), in: schema.tokens)
            record.flags.insert(.destroyPending)
            putSet(record, set)
            let destroyed = try finishDestroyIfEmpty(set)
            return FreeSetResult(freed: freed, destroyed: destroyed)
        }
    }

    /// Removes a destroy-pending set that holds no IDs and returns its quota.
    func finishDestroyIfEmpty(_ set: SetID) throws -> Bool {
        let record = try setRecord(set)
        guard record.flags.contains(.destroyPending), record.count == 0 else { return false }
        let reserved = try reservedQuota()
        guard reserved >= UInt64(record.quota) else {
            throw IOASIDError(.corruptStore, "the reserved total \(reserved) is below set \(set)'s quota \(record.quota)")
        }
        removeSet(set)
        try putReserved(reserved - UInt64(record.quota))
        return true
    }

    /// Refuses `amount` of new quota unless it fits in unreserved capacity (kernel `-ENOSPC`).
    private func checkFitsUnreserved(_ amount: UInt64, what: String) throws {
        let unreserved = try unreservedQuota()
        guard amount <= unreserved else {
            throw IOASIDError(.capacityExhausted, "\(what) exceeds unreserved capacity \(unreserved)")
        }
    }

    /// Refuses to destroy or migrate the system set: the one definition of its protection.
    func checkNotSystem(_ set: SetID, _ record: SetRecord, doing what: String) throws {
        if record.flags.contains(.system) {
            throw IOASIDError(.systemSetProtected, "the system set cannot be \(what)")
        }
    }
}
