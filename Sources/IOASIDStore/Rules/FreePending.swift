import IOASIDMigrations
import LMDB

/// Free-pending IDs, holds and reclaim: the persistent form of the kernel's
/// FREE_PENDING state and `ioasid_get`/`ioasid_put`.
///
/// A freed ID is *held back* while a holder holds it or a gating subscriber
/// interested in its set has not acknowledged its FREE; it returns to the pool
/// (RECLAIM) exactly when the last of them lets go.
extension IOASIDReading where Self: ~Copyable {
    /// The names of the holders of `id`, in order.
    public func holders(of id: IOASID) throws -> [String] {
        let prefix = StoreLayout.idKey(id.rawValue)
        return try txn.withCursor(on: schema.holds) { cursor in
            var names: [String] = []
            try cursor.forEach(from: prefix) { entry in
                guard entry.keyHasPrefix(prefix) else { return false }
                guard entry.keyCount > 4, let name = entry.keyText(from: 4), entry.sealedReader() != nil else {
                    throw IOASIDError.undecodable(database: "holds", key: entry.keyBytes())
                }
                names.append(name)
                return true
            }
            return names
        }
    }

    /// The sequence number of the FREE event of a free-pending ID (0 when none was stored).
    func freeSequence(of id: IOASID) throws -> UInt64? {
        try record(StoreLayout.idKey(id.rawValue), in: schema.pending) { r in
            let v = try r.u64()
            try r.end()
            return v
        }
    }

    /// Whether anything holds a free-pending ID back: a holder, or a gating
    /// subscriber that takes FREE events of `set` and has not acknowledged the
    /// ID's FREE (sequence `freeSequence`). The one definition of "held back".
    func isHeldBack(_ id: IOASID, set: SetID, freeSequence: UInt64?) throws -> Bool {
        // No hold anywhere (the common case) is one look at the database's entry count.
        if try txn.count(of: schema.holds) > 0, try !holders(of: id).isEmpty { return true }
        return try !waitingSubscribers(set: set, freeSequence: freeSequence).isEmpty
    }

    /// The gating subscribers that have not acknowledged the FREE (`freeSequence`) of an ID of `set`.
    func waitingSubscribers(set: SetID, freeSequence: UInt64?) throws -> [String] {
        guard let sequence = freeSequence, sequence > 0 else { return [] }
        return try subscriberRecords().filter { Self.waits($0.record, for: sequence, set: set) }.map(\.name)
    }

    /// Whether `subscriber` holds back the ID of `set` whose FREE has `sequence`.
    static func waits(_ subscriber: SubscriberRecord, for sequence: UInt64, set: SetID) -> Bool {
        subscriber.isGating && subscriber.acknowledgedThrough < sequence && subscriber.takes(kind: Event.Kind.free.code, set: set.rawValue)
    }
}

extension WriteTransaction {
    /// Takes a durable hold on an allocated ID for `holder` (kernel `ioasid_get`).
    ///
    /// - Returns: `false` when `holder` already held it.
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID``, ``IOASIDError/Code-swift.struct/wrongSet``,
    ///   ``IOASIDError/Code-swift.struct/idFreePending`` (kernel `-EBUSY`),
    ///   ``IOASIDError/Code-swift.struct/invalidArgument`` (a holder that is not a name; see ``Names``).
    @discardableResult
    public func retain(_ id: IOASID, in set: SetID, holder: String) throws -> Bool {
        try operation {
            try Names.check(holder, as: "holder name")
            let record = try ownedRecord(id, in: set)
            guard !record.isFreePending else {
                throw IOASIDError(.idFreePending, "ID \(id) is free-pending and cannot be retained")
            }
            let key = StoreLayout.holdKey(id: id.rawValue, holder: holder)
            return try txn.put(sealed: [], forKey: key, in: schema.holds, overwrite: false)
        }
    }

    /// Releases `holder`'s hold (kernel `ioasid_put`); a free-pending ID that
    /// nothing else holds back is reclaimed.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID``, ``IOASIDError/Code-swift.struct/wrongSet``,
    ///   ``IOASIDError/Code-swift.struct/noSuchHold``.
    public func release(_ id: IOASID, in set: SetID, holder: String) throws {
        try operation {
            let record = try ownedRecord(id, in: set)
            guard try remove(StoreLayout.holdKey(id: id.rawValue, holder: holder), in: schema.holds) else {
                throw IOASIDError(.noSuchHold, "\"\(Names.escaped(holder))\" does not hold ID \(id)")
            }
            if record.isFreePending { try reclaimIfReleased(id) }
        }
    }

    /// Frees an ID of `owner`: commits its FREE, then reclaims it at once when
    /// nothing holds it back, or marks it free-pending.
    ///
    /// - Parameter known: the ID's record as this transaction has it, when the caller read it already.
    /// - Returns: whether it was freed now (`false`: it already was free-pending).
    func free(_ id: IOASID, owner: SetID, record known: IDRecord? = nil) throws -> Bool {
        guard var record = try known ?? idRecord(id) else { throw try notAllocated(id) }
        if record.isFreePending { return false }
        var set = try setRecord(owner)
        try unbindOnFree(id, record: &record, token: set.token)
        let sequence = try emit(.free, set: owner, token: set.token, id: id)
        if try isHeldBack(id, set: owner, freeSequence: sequence) {
            record.isFreePending = true
            try putID(record, id)
            try put(ByteWriter.u64(sequence ?? 0), StoreLayout.idKey(id.rawValue), in: schema.pending)
            set.pending += 1
            putSet(set, owner)
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
        guard let record = try idRecord(id), record.isFreePending else { return false }
        guard try !isHeldBack(id, set: SetID(record.set), freeSequence: try freeSequence(of: id)) else { return false }
        try reclaim(id, record: record, wasPending: true)
        return true
    }

    /// Removes the ID from its set, returns it to the free index and commits RECLAIM.
    private func reclaim(_ id: IOASID, record: IDRecord, wasPending: Bool) throws {
        let owner = SetID(record.set)
        var set = try setRecord(owner)
        guard set.count > 0, !wasPending || set.pending > 0 else {
            throw IOASIDError(.corruptStore, "set \(owner)'s counters do not include ID \(id)")
        }
        try StoreLayout.withIDKey(id.rawValue) { key in
            _ = try txn.delete(rawKey: key, in: schema.ids)
            if wasPending { _ = try txn.delete(rawKey: key, in: schema.pending) }
        }
        try giveFree(id.rawValue...id.rawValue)
        set.count -= 1
        if wasPending { set.pending -= 1 }
        putSet(set, owner)
        try emit(.reclaim, set: owner, token: set.token, id: id)
        _ = try finishDestroyIfEmpty(owner)
    }
}
