import LMDB

/// Lookups, available in read and write transactions.
extension IOASIDReading {
    var txn: Transaction { context.txn }
    var schema: Schema { context.schema }

    /// IDs run from 1 to `capacity − 1`.
    public func capacity() throws -> UInt32 {
        guard let raw = try txn.get(MetaKey.capacity, in: schema.meta), let value = Key.decodeU32(raw) else {
            throw IOASIDError(.notInitialized, "the store has no capacity; run `ioasid init`")
        }
        return value
    }

    /// Σ of every live set's quota.
    public func reservedQuota() throws -> UInt64 {
        guard let raw = try txn.get(MetaKey.reserved, in: schema.meta) else { return 0 }
        var r = ByteReader(raw)
        do { return try r.u64() } catch { throw IOASIDError(.corruptStore, "malformed reserved-quota record") }
    }

    /// The set with this ID, live or waiting to be destroyed.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSet``.
    public func set(_ id: SetID) throws -> SetInfo {
        SetInfo(id: id.rawValue, record: try setRecord(id))
    }

    /// The live set owned by `token`, if any.
    public func set(withToken token: String) throws -> SetInfo? {
        guard let raw = try txn.get(Array(token.utf8), in: schema.tokens), let id = Key.decodeU32(raw) else {
            return nil
        }
        return try set(SetID(id))
    }

    /// Every set, in ID order.
    public func sets() throws -> [SetInfo] {
        try txn.withCursor(on: schema.sets) { cursor in
            var result: [SetInfo] = []
            var entry = try cursor.first()
            while let e = entry {
                guard let id = Key.decodeU32(e.key) else { throw IOASIDError(.corruptStore, "malformed set key") }
                result.append(SetInfo(id: id, record: try decodeSet(e.value, id)))
                entry = try cursor.next()
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
    public func forEachID(in set: SetID, after: IOASID? = nil, _ body: (IOASID) throws -> Bool) throws {
        let start = after.map { Key.pair(set.rawValue, $0.rawValue &+ 1) } ?? Key.pair(set.rawValue, 0)
        if let after, after.rawValue == .max { return }
        try txn.withCursor(on: schema.setIDs) { cursor in
            var entry = try cursor.seek(atOrAfter: start)
            while let e = entry, Key.decodeU32(e.key) == set.rawValue {
                guard let id = Key.decodeU32(e.key, at: 4) else { throw IOASIDError(.corruptStore, "malformed set-ids key") }
                if try !body(IOASID(id)) { return }
                entry = try cursor.next()
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
        guard let raw = try txn.get(Key.u32(id.rawValue), in: schema.ids) else {
            throw IOASIDError(.noSuchID, "ID \(id) is not allocated")
        }
        return IDInfo(id: id.rawValue, record: try decodeID(raw, id.rawValue))
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
            sets: sets
        )
    }

    // MARK: Records

    func setRecord(_ id: SetID) throws -> SetRecord {
        guard let raw = try txn.get(Key.u32(id.rawValue), in: schema.sets) else {
            throw IOASIDError(.noSuchSet, "no set \(id)")
        }
        return try decodeSet(raw, id.rawValue)
    }

    /// The record of a set that is live (not destroyed or waiting to be).
    func liveSetRecord(_ id: SetID) throws -> SetRecord {
        let record = try setRecord(id)
        guard record.isLive else { throw IOASIDError(.noSuchSet, "set \(id) has been destroyed") }
        return record
    }

    func idRecord(_ id: IOASID) throws -> IDRecord? {
        guard let raw = try txn.get(Key.u32(id.rawValue), in: schema.ids) else { return nil }
        return try decodeID(raw, id.rawValue)
    }

    func decodeSet(_ raw: [UInt8], _ id: UInt32) throws -> SetRecord {
        do { return try SetRecord(decoding: raw) } catch {
            throw IOASIDError(.corruptStore, "the record of set \(id) does not decode")
        }
    }

    func decodeID(_ raw: [UInt8], _ id: UInt32) throws -> IDRecord {
        do { return try IDRecord(decoding: raw) } catch {
            throw IOASIDError(.corruptStore, "the record of ID \(id) does not decode")
        }
    }
}
