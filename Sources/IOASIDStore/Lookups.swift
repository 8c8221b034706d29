import IOASIDMigrations
import LMDB

/// Lookups, available in read and write transactions.
extension IOASIDReading where Self: ~Copyable {
    /// The set with this ID, live or waiting to be destroyed.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSet``.
    public func set(_ id: SetID) throws -> SetInfo {
        SetInfo(id: id.rawValue, record: try setRecord(id))
    }

    /// The live set owned by `token`, if any.
    public func set(withToken token: String) throws -> SetInfo? {
        let id = try record(StoreLayout.tokenKey(token), in: schema.tokens) { r in
            let id = try r.u32()
            try r.end()
            return id
        }
        guard let id else { return nil }
        return try set(SetID(id))
    }

    /// Every set, in ID order.
    public func sets() throws -> [SetInfo] {
        try flushDeferredWrites()
        return try txn.withCursor(on: schema.control) { cursor in
            var result: [SetInfo] = []
            try cursor.forEach(from: [StoreLayout.ControlTag.set]) { entry in
                guard entry.keyByte(at: 0) == StoreLayout.ControlTag.set else { return false }
                guard entry.keyCount == 5, let id = entry.keyU32(at: 1) else {
                    throw IOASIDError.undecodable(database: "control", key: entry.keyBytes())
                }
                result.append(SetInfo(id: id, record: try Self.decode(entry, in: "control") { try SetRecord(decoding: &$0) }))
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
        guard limit > 0 else { return result }
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
        try forEachIDRecord(after: after) { id, owner, _ in
            owner == set.rawValue ? try body(IOASID(id)) : true
        }
    }

    /// Calls `body` with each ID of the set and its record, in ascending order (one scan).
    func forEachRecord(in set: SetID, _ body: (IOASID, IDRecord) throws -> Void) throws {
        try forEachRecord(where: { $0 == set.rawValue }, body)
    }

    /// Calls `body` with each ID whose owning set passes `wanted`, and its record, in ascending order (one scan).
    func forEachRecord(where wanted: (UInt32) -> Bool, _ body: (IOASID, IDRecord) throws -> Void) throws {
        try forEachIDRecord(after: nil) { id, owner, entry in
            if wanted(owner) { try body(IOASID(id), try Self.decode(entry, in: "ids") { try IDRecord(decoding: &$0) }) }
            return true
        }
    }

    /// Scans `ids` from after `after`, checking each record's seal and handing
    /// `body` the ID, its owner and the entry (to decode the rest only when needed).
    private func forEachIDRecord(after: IOASID?, _ body: (UInt32, UInt32, borrowing CursorEntry) throws -> Bool) throws {
        if let after, after.rawValue == .max { return }
        try txn.withCursor(on: schema.ids) { cursor in
            try cursor.forEach(from: StoreLayout.idKey(after.map { $0.rawValue + 1 } ?? 0)) { entry in
                guard entry.keyCount == 4, let id = entry.keyU32() else {
                    throw IOASIDError.undecodable(database: "ids", key: entry.keyBytes())
                }
                let owner = try Self.decode(entry, in: "ids") { try IDRecord.owner(decoding: &$0) }
                return try body(id, owner, entry)
            }
        }
    }

    /// The ID's record after checking that it belongs to `set` (kernel `ioasid_find`).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID`` when it is not allocated,
    ///   ``IOASIDError/Code-swift.struct/wrongSet`` when another set owns it,
    ///   ``IOASIDError/Code-swift.struct/corruptStore`` when it is neither allocated nor free.
    @inline(__always)
    public func find(_ id: IOASID, in set: SetID) throws -> IDInfo {
        try info(id, try ownedRecord(id, in: set))
    }

    /// The ID's record, whichever set owns it.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID``, or
    ///   ``IOASIDError/Code-swift.struct/corruptStore`` when it is neither allocated nor free.
    public func find(_ id: IOASID) throws -> IDInfo {
        guard let record = try idRecord(id) else { throw try notAllocated(id) }
        return try info(id, record)
    }

    /// An ID as seen by callers; a free-pending one says what holds it back.
    @inline(__always)
    private func info(_ id: IOASID, _ record: IDRecord) throws -> IDInfo {
        guard record.isFreePending else { return IDInfo(id: id.rawValue, record: record) }
        return try freePendingInfo(id, record)
    }

    /// ``info(_:_:)`` of a free-pending ID (out of line: a lookup rarely finds one).
    private func freePendingInfo(_ id: IOASID, _ record: IDRecord) throws -> IDInfo {
        IDInfo(
            id: id.rawValue, record: record, holders: try holders(of: id),
            waitingFor: try waitingSubscribers(set: SetID(record.set), freeSequence: try freeSequence(of: id))
        )
    }

    /// The set that owns `id` (kernel `ioasid_find_sid`).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID``, or
    ///   ``IOASIDError/Code-swift.struct/corruptStore`` when it is neither allocated nor free.
    public func findSet(_ id: IOASID) throws -> SetID {
        let owner = try record(id: id.rawValue, in: schema.ids) { try IDRecord.owner(decoding: &$0) }
        guard let owner else { throw try notAllocated(id) }
        return SetID(owner)
    }

    /// Store-wide figures and every set. Counts come from the (checksummed)
    /// set records, never from LMDB's page statistics.
    public func status() throws -> StoreStatus {
        let capacity = try capacity()
        let reserved = try reservedQuota()
        let sets = try sets()
        return StoreStatus(
            capacity: capacity,
            reserved: reserved,
            unreserved: Self.unreserved(capacity: capacity, reserved: reserved),
            allocated: sets.reduce(0) { $0 + UInt64($1.allocated) },
            freePending: sets.reduce(0) { $0 + UInt64($1.freePending) },
            sets: sets,
            subscribers: try subscribers(),
            lastSequence: try lastSequence()
        )
    }

    /// Decodes the sealed payload of a scanned entry, reporting damage as a corrupt store.
    static func decode<R>(_ entry: borrowing CursorEntry, in database: String, _ decode: (inout ValueReader) throws -> R) throws -> R {
        guard var reader = entry.sealedReader() else {
            throw IOASIDError(.corruptStore, "the record under key \(Hex.encode(entry.keyBytes())) in database \(database) is damaged (checksum mismatch)")
        }
        do {
            return try decode(&reader)
        } catch {
            throw IOASIDError.undecodable(database: database, key: entry.keyBytes())
        }
    }
}

/// The lookups a caller makes most, on the concrete read transaction: a caller in
/// another module calling the ``IOASIDReading`` methods reaches them through the
/// protocol's witness table (unspecialised generic code); these are specialised here.
extension ReadTransaction {
    /// The ID's record after checking that it belongs to `set` (kernel `ioasid_find`).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID`` when it is not allocated,
    ///   ``IOASIDError/Code-swift.struct/wrongSet`` when another set owns it,
    ///   ``IOASIDError/Code-swift.struct/corruptStore`` when it is neither allocated nor free.
    public func find(_ id: IOASID, in set: SetID) throws -> IDInfo { try Self.find(self, id, in: set) }

    /// The set that owns `id` (kernel `ioasid_find_sid`).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID``, or
    ///   ``IOASIDError/Code-swift.struct/corruptStore`` when it is neither allocated nor free.
    public func findSet(_ id: IOASID) throws -> SetID { try Self.findSet(self, id) }

    /// The host ID that `guest` maps to in `set` (kernel `ioasid_find_by_spid`).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSet``, ``IOASIDError/Code-swift.struct/noSuchGuest``.
    public func hostID(forGuest guest: UInt32, in set: SetID) throws -> IOASID { try Self.hostID(self, guest, in: set) }

    // The protocol's methods, called where `Self` is generic (so not these again), specialised for `ReadTransaction`.
    @inline(__always)
    private static func find<T: IOASIDReading & ~Copyable>(_ tx: borrowing T, _ id: IOASID, in set: SetID) throws -> IDInfo {
        try tx.find(id, in: set)
    }
    private static func findSet<T: IOASIDReading & ~Copyable>(_ tx: borrowing T, _ id: IOASID) throws -> SetID { try tx.findSet(id) }
    private static func hostID<T: IOASIDReading & ~Copyable>(_ tx: borrowing T, _ guest: UInt32, in set: SetID) throws -> IOASID {
        try tx.hostID(forGuest: guest, in: set)
    }
}
