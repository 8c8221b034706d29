import LMDB

/// Lookups, available in read and write transactions.
extension IOASIDReading where Self: ~Copyable {
    /// IDs run from 1 to `capacity − 1`.
    public func capacity() throws -> UInt32 {
        guard let raw = try txn.get(MetaKey.capacity, in: schema.meta), raw.count == 4, let value = Key.decodeU32(raw) else {
            throw IOASIDError(.notInitialized, "the store has no capacity; run `ioasid init`")
        }
        return value
    }

    /// Σ of every live set's quota.
    public func reservedQuota() throws -> UInt64 {
        try txn.withValue(forKey: MetaKey.reserved, in: schema.meta) { reader in
            try decoding("reserved quota") { try reader.u64() }
        } ?? 0
    }

    /// The set with this ID, live or waiting to be destroyed.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSet``.
    public func set(_ id: SetID) throws -> SetInfo {
        SetInfo(id: id.rawValue, record: try setRecord(id))
    }

    /// The live set owned by `token`, if any.
    public func set(withToken token: String) throws -> SetInfo? {
        guard let raw = try txn.get(Array(token.utf8), in: schema.tokens), raw.count == 4, let id = Key.decodeU32(raw) else {
            return nil
        }
        return try set(SetID(id))
    }

    /// Every set, in ID order.
    public func sets() throws -> [SetInfo] {
        try txn.withCursor(on: schema.control) { cursor in
            var result: [SetInfo] = []
            try cursor.scan(from: [ControlTag.set]) { key, reader in
                guard key.first == ControlTag.set else { return false }
                guard key.count == 5, let id = Key.decodeU32(key, at: 1) else {
                    throw IOASIDError(.corruptStore, "malformed set key")
                }
                result.append(SetInfo(id: id, record: try decoding("set \(id)") { try SetRecord(decoding: &reader) }))
                return true
            }
            return result
        }
    }

    /// The IDs the set holds (allocated and free-pending) in ascending order,
    /// starting after `after`, at most `limit` of them.
    public func ids(in set: SetID, after: IOASID? = nil, limit: Int = .max) throws -> [IOASID] {
        _ = try setRecord(set)
        var result: [IOASID] = []
        try forEachID(in: set, after: after) { id in
            result.append(id)
            return result.count < limit
        }
        return result
    }

    /// Calls `body` for each ID the set holds, in ascending order, until it returns `false`.
    ///
    /// Walks the ID table (like the kernel's `ioasid_free_set` walks its xarray):
    /// the store keeps no per-set index, so that an allocation writes as few pages as possible.
    public func forEachID(in set: SetID, after: IOASID? = nil, _ body: (IOASID) throws -> Bool) throws {
        if let after, after.rawValue == .max { return }
        try txn.withCursor(on: schema.ids) { cursor in
            var more = true
            try cursor.scan(from: Key.u32(after.map { $0.rawValue + 1 } ?? 0)) { key, reader in
                guard key.count == 4, let id = Key.decodeU32(key) else {
                    throw IOASIDError(.corruptStore, "malformed ID key")
                }
                let owner = try decoding("ID \(id)") { try IDRecord.owner(decoding: &reader) }
                if owner == set.rawValue { more = try body(IOASID(id)) }
                return more
            }
        }
    }

    /// Calls `body` with each ID of the set and its record, in ascending order (one scan).
    func forEachRecord(in set: SetID, _ body: (IOASID, IDRecord) throws -> Void) throws {
        try txn.withCursor(on: schema.ids) { cursor in
            try cursor.scan(from: []) { key, reader in
                guard key.count == 4, let id = Key.decodeU32(key) else {
                    throw IOASIDError(.corruptStore, "malformed ID key")
                }
                let record = try decoding("ID \(id)") { try IDRecord(decoding: &reader) }
                if record.set == set.rawValue { try body(IOASID(id), record) }
                return true
            }
        }
    }

    /// The ID's record after checking that it belongs to `set` (kernel `ioasid_find`).
    ///
    /// - Throws: ``IOASIDError/Code/noSuchID`` when it is not allocated,
    ///   ``IOASIDError/Code/wrongSet`` when another set owns it.
    public func find(_ id: IOASID, in set: SetID) throws -> IDInfo {
        let info = try find(id)
        guard info.set == set else {
            throw IOASIDError(.wrongSet, "ID \(id) does not belong to set \(set)")
        }
        return info
    }

    /// The ID's record, whichever set owns it.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchID``.
    public func find(_ id: IOASID) throws -> IDInfo {
        guard let record = try idRecord(id) else { throw IOASIDError(.noSuchID, "ID \(id) is not allocated") }
        return IDInfo(id: id.rawValue, record: record)
    }

    /// The set that owns `id` (kernel `ioasid_find_sid`).
    ///
    /// - Throws: ``IOASIDError/Code/noSuchID``.
    public func findSet(_ id: IOASID) throws -> SetID { try find(id).set }

    /// Store-wide figures and every set.
    public func status() throws -> StoreStatus {
        let capacity = try capacity()
        let reserved = try reservedQuota()
        let sets = try sets()
        return StoreStatus(
            capacity: capacity,
            reserved: reserved,
            unreserved: UInt64(capacity) - 1 - min(reserved, UInt64(capacity) - 1),
            allocated: UInt64(try txn.count(of: schema.ids)),
            freePending: sets.reduce(0) { $0 + UInt64($1.freePending) },
            sets: sets,
            subscribers: try subscribers(),
            lastSequence: try lastSequence()
        )
    }

    // MARK: Records

    func setRecord(_ id: SetID) throws -> SetRecord {
        let record = try txn.withValue(forKey: Key.set(id.rawValue), in: schema.control) { reader in
            try decoding("set \(id)") { try SetRecord(decoding: &reader) }
        }
        guard let record else { throw IOASIDError(.noSuchSet, "no set \(id)") }
        return record
    }

    /// The record of a set that is live (not destroyed or waiting to be).
    func liveSetRecord(_ id: SetID) throws -> SetRecord {
        let record = try setRecord(id)
        guard record.isLive else { throw IOASIDError(.noSuchSet, "set \(id) has been destroyed") }
        return record
    }

    func idRecord(_ id: IOASID) throws -> IDRecord? {
        try txn.withValue(forKey: id.rawValue, in: schema.ids) { reader in
            try decoding("ID \(id)") { try IDRecord(decoding: &reader) }
        }
    }
}

/// Runs a record decoder, reporting a failure as a corrupt store.
func decoding<R>(_ what: @autoclosure () -> String, _ body: () throws -> R) throws -> R {
    do { return try body() } catch { throw IOASIDError(.corruptStore, "the record of \(what()) does not decode") }
}
