import IOASIDMigrations
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
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSet``, ``IOASIDError/Code-swift.struct/setFrozen``,
    ///   ``IOASIDError/Code-swift.struct/quotaExceeded``,
    ///   ``IOASIDError/Code-swift.struct/invalidArgument`` (a range outside `1 … capacity − 1`),
    ///   ``IOASIDError/Code-swift.struct/rangeExhausted``, ``IOASIDError/Code-swift.struct/duplicateGuest``.
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
            try checkDataSize(data)
            if let guest { try checkGuestFree(guest, in: set) }
            guard let slot = try lowestFreeSlot(in: range.lowerBound, range.upperBound) else {
                throw IOASIDError(.rangeExhausted, "no free ID in \(range.lowerBound)…\(range.upperBound)")
            }
            try takeFree(slot)
            try data.withUnsafeBytes { data in try place(IOASID(slot.id), in: set, record: &record, data: data, guest: guest) }
            putSet(record, set)
            return IOASID(slot.id)
        }
    }

    /// Gives a free ID (already taken from the free index) to `set`: writes its
    /// record (and guest mapping), counts it in `record`, and commits ALLOC (and
    /// BIND). The caller writes `record` back (``putSet(_:_:)``), once for a run of IDs.
    func place(_ id: IOASID, in set: SetID, record: inout SetRecord, data: UnsafeRawBufferPointer, guest: UInt32?) throws {
        try putID(set: set.rawValue, guest: guest, data: data, id.rawValue)
        if let guest { try putGuestMapping(guest, in: set.rawValue, to: id.rawValue) }
        record.count += 1
        try emit(.alloc, set: set, token: record.token, id: id)
        if let guest { try emit(.bind, set: set, token: record.token, id: id, guest: guest) }
    }

    /// Replaces the private data of an allocated ID (kernel `ioasid_attach_data`).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID``, ``IOASIDError/Code-swift.struct/wrongSet``,
    ///   ``IOASIDError/Code-swift.struct/setFrozen``, ``IOASIDError/Code-swift.struct/idFreePending``.
    public func setData(_ data: [UInt8], for id: IOASID, in set: SetID) throws {
        try operation {
            _ = try changeableSetRecord(set)
            var record = try ownedRecord(id, in: set)
            guard !record.isFreePending else { throw IOASIDError(.idFreePending, "ID \(id) has been freed") }
            try checkDataSize(data)
            record.data = data
            try putID(record, id)
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
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchID``, ``IOASIDError/Code-swift.struct/wrongSet``, ``IOASIDError/Code-swift.struct/setFrozen``.
    @discardableResult
    public func free(_ id: IOASID, in set: SetID) throws -> Bool {
        try operation {
            _ = try changeableSetRecord(set)
            return try free(id, owner: set, record: try ownedRecord(id, in: set))
        }
    }

    /// Writes an ID record.
    func putID(_ record: IDRecord, _ id: IOASID) throws {
        try record.data.withUnsafeBytes { data in
            try putID(set: record.set, isFreePending: record.isFreePending, guest: record.guest, data: data, id.rawValue)
        }
    }

    /// Writes an ID record straight into the database's room: no record, payload or key array.
    func putID(set: UInt32, isFreePending: Bool = false, guest: UInt32?, data: UnsafeRawBufferPointer, _ id: UInt32) throws {
        try StoreLayout.withIDKey(id) { key in
            _ = try txn.put(sealedPayloadSize: IDRecord.encodedSize(guest: guest, dataCount: data.count), rawKey: key, in: schema.ids) { out in
                IDRecord.encode(set: set, isFreePending: isFreePending, guest: guest, data: data, into: out)
            }
        }
    }
}

extension IOASIDStore {
    /// The private data limit of a store created with default options (4 KiB).
    public static let defaultMaximumDataSize = 4096
    /// The largest private data limit a store accepts (1 MiB).
    public static let largestDataSizeLimit: UInt32 = 1 << 20
}

extension IOASIDReading where Self: ~Copyable {
    /// The most bytes of private data an ID may carry in this store.
    public func maximumDataSize() throws -> Int {
        if let cached = context.state.maximumDataSize { return cached }
        let limit = Int(try metaU32(StoreLayout.MetaKey.maximumDataSize) ?? UInt32(IOASIDStore.defaultMaximumDataSize))
        context.state.maximumDataSize = limit
        return limit
    }

    /// Refuses data beyond the store's limit.
    func checkDataSize(_ data: [UInt8]) throws {
        guard !data.isEmpty else { return }
        let limit = try maximumDataSize()
        guard data.count <= limit else {
            throw IOASIDError(.invalidArgument, "private data of \(data.count) bytes exceeds the store's limit of \(limit) bytes")
        }
    }
}
