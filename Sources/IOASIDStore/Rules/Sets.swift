import LMDB

/// Sets: per-VM namespaces with an owner token and a quota reserved from capacity.
extension WriteTransaction {
    /// Creates a set owned by `token` whose `quota` is reserved from capacity
    /// (kernel `ioasid_alloc_set`).
    ///
    /// - Throws: ``IOASIDError/Code/invalidArgument`` (quota 0, empty token),
    ///   ``IOASIDError/Code/duplicateToken``, ``IOASIDError/Code/capacityExhausted``.
    public func createSet(token: String, quota: UInt32) throws -> SetID {
        try operation {
            guard quota > 0 else { throw IOASIDError(.invalidArgument, "quota must be at least 1") }
            guard !token.isEmpty, token.utf8.count <= 256 else {
                throw IOASIDError(.invalidArgument, "a token must be 1 to 256 bytes long")
            }
            if let existing = try txn.get(Array(token.utf8), in: schema.tokens), let id = Key.decodeU32(existing) {
                throw IOASIDError(.duplicateToken, "token \"\(token)\" already owns set \(id)")
            }
            let capacity = try capacity()
            let reserved = try reservedQuota()
            let unreserved = UInt64(capacity) - 1 - min(reserved, UInt64(capacity) - 1)
            guard UInt64(quota) <= unreserved else {
                throw IOASIDError(.capacityExhausted, "quota \(quota) exceeds unreserved capacity \(unreserved)")
            }
            guard let raw = try txn.get(MetaKey.nextSetID, in: schema.meta), let next = Key.decodeU32(raw), next < .max else {
                throw IOASIDError(.corruptStore, "the next set ID is missing or exhausted")
            }
            try txn.put(Key.u32(next + 1), forKey: MetaKey.nextSetID, in: schema.meta)
            try putSet(SetRecord(token: token, quota: quota), SetID(next))
            try txn.put(Key.u32(next), forKey: Array(token.utf8), in: schema.tokens)
            try putReserved(reserved + UInt64(quota))
            try emit(.setCreate, set: SetID(next), token: token, quota: quota)
            return SetID(next)
        }
    }

    /// Changes a set's quota (kernel `ioasid_adjust_set`). A decrease returns
    /// capacity to the pool; an increase must fit in unreserved capacity
    /// (the *delta* is compared, not the whole quota).
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSet``, ``IOASIDError/Code/invalidArgument`` (quota 0),
    ///   ``IOASIDError/Code/quotaBelowUsage``, ``IOASIDError/Code/capacityExhausted``.
    public func adjustQuota(of set: SetID, to quota: UInt32) throws {
        try operation {
            var record = try changeableSetRecord(set)
            guard quota > 0 else { throw IOASIDError(.invalidArgument, "quota must be at least 1") }
            guard quota >= record.count else {
                throw IOASIDError(.quotaBelowUsage, "set \(set) holds \(record.count) IDs; quota \(quota) is below that")
            }
            if quota == record.quota { return }  // no change, no event
            let reserved = try reservedQuota()
            if quota > record.quota {
                let capacity = try capacity()
                let unreserved = UInt64(capacity) - 1 - min(reserved, UInt64(capacity) - 1)
                let delta = UInt64(quota - record.quota)
                guard delta <= unreserved else {
                    throw IOASIDError(.capacityExhausted, "raising the quota by \(delta) exceeds unreserved capacity \(unreserved)")
                }
            }
            guard reserved >= UInt64(record.quota) else {
                throw IOASIDError(.corruptStore, "the reserved total \(reserved) is below set \(set)'s quota \(record.quota)")
            }
            let newReserved = reserved - UInt64(record.quota) + UInt64(quota)
            record.quota = quota
            try putSet(record, set)
            try putReserved(newReserved)
            try emit(.setQuota, set: set, token: record.token, quota: quota)
        }
    }

    /// Frees every allocated ID of the set (kernel `ioasid_free_set`), and with
    /// `destroy` removes the set: its token is released at once, its quota
    /// returns when its last ID has been reclaimed.
    ///
    /// Without `destroy`, the set (and its ID) can be used again.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSet``, ``IOASIDError/Code/systemSetProtected``.
    @discardableResult
    public func freeSet(_ set: SetID, destroy: Bool) throws -> FreeSetResult {
        try operation {
            var record = try changeableSetRecord(set)
            if destroy && record.flags.contains(.system) {
                throw IOASIDError(.systemSetProtected, "the system set cannot be destroyed")
            }
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
            try txn.delete(Array(record.token.utf8), in: schema.tokens)
            record.flags.insert(.destroyPending)
            try putSet(record, set)
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
        try txn.delete(Key.set(set.rawValue), in: schema.control)
        try putReserved(reserved - UInt64(record.quota))
        return true
    }

    func putSet(_ record: SetRecord, _ set: SetID) throws {
        try txn.put(record.encoded(), forKey: Key.set(set.rawValue), in: schema.control)
    }
}
