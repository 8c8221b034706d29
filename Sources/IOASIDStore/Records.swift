import IOASIDMigrations
import LMDB

/// Record access. Every read checks the record's seal (its CRC32C) and decodes
/// it, and reports damage as ``IOASIDError/Code-swift.struct/corruptStore`` naming the
/// database and key instead of returning a wrong value; every write seals.
///
/// Set records and the capacity are read at most once per transaction; a
/// write transaction keeps changed set records in memory and writes each once,
/// before it commits (``IOASIDReading/flushDeferredWrites()``).
extension IOASIDReading where Self: ~Copyable {
    /// The payload of the sealed record under `key`, decoded by `decode`; `nil` when absent.
    func record<R>(_ key: [UInt8], in db: Database, _ decode: (inout ValueReader) throws -> R) throws -> R? {
        try key.withUnsafeBytes { try record(rawKey: $0, in: db, decode) }
    }

    /// ``record(_:in:_:)`` for a key given as raw bytes (for example on the stack).
    func record<R>(rawKey key: UnsafeRawBufferPointer, in db: Database, _ decode: (inout ValueReader) throws -> R) throws -> R? {
        do {
            return try txn.withSealedValue(rawKey: key, in: db, decode)
        } catch let error as DamagedRecord {
            throw IOASIDError.damaged(database: db.name, key: Array(key), cause: error)
        } catch is DecodingFailure {
            throw IOASIDError.undecodable(database: db.name, key: Array(key))
        } catch let error as ValueReader.Underflow {
            throw IOASIDError.undecodable(database: db.name, key: Array(key), cause: error)
        }
    }

    /// A `u32` value of `meta`.
    func metaU32(_ key: [UInt8]) throws -> UInt32? { try record(key, in: schema.meta) { r in let v = try r.u32(); try r.end(); return v } }
    /// A `u64` value of `meta`.
    func metaU64(_ key: [UInt8]) throws -> UInt64? { try record(key, in: schema.meta) { r in let v = try r.u64(); try r.end(); return v } }

    /// IDs run from 1 to `capacity − 1`.
    public func capacity() throws -> UInt32 {
        if let cached = context.state.capacity { return cached }
        guard let value = try metaU32(StoreLayout.MetaKey.capacity), value >= 2 else {
            throw IOASIDError(.corruptStore, "database meta has no valid capacity record (every initialised store has one, at least 2)")
        }
        context.state.capacity = value
        return value
    }

    /// Σ of every set's quota (live or waiting to be destroyed).
    public func reservedQuota() throws -> UInt64 { try metaU64(StoreLayout.MetaKey.reserved) ?? 0 }

    /// The set record, live or waiting to be destroyed.
    func setRecord(_ id: SetID) throws -> SetRecord {
        if let cached = context.state.sets[id.rawValue] {
            guard let record = cached.record else { throw IOASIDError(.noSuchSet, "no set \(id)") }
            return record
        }
        guard let record = try record(StoreLayout.setKey(id.rawValue), in: schema.control, { try SetRecord(decoding: &$0) }) else {
            throw IOASIDError(.noSuchSet, "no set \(id)")
        }
        context.state.sets[id.rawValue] = CachedSet(record: record, dirty: false)
        return record
    }

    /// The ID's record, or `nil` when it is not allocated.
    @inline(__always)
    func idRecord(_ id: IOASID) throws -> IDRecord? {
        try record(id: id.rawValue, in: schema.ids) { try IDRecord(decoding: &$0) }
    }

    /// ``record(_:in:_:)`` for a key that is one ID (`ids`, `pending`), built on the stack.
    @inline(__always)
    func record<R>(id: UInt32, in db: Database, _ decode: (inout ValueReader) throws -> R) throws -> R? {
        do {
            return try txn.withSealedValue(forKey: id, in: db, decode)
        } catch let error as DamagedRecord {
            throw IOASIDError.damaged(database: db.name, key: error.key, cause: error)
        } catch is DecodingFailure {
            throw IOASIDError.undecodable(database: db.name, key: StoreLayout.idKey(id))
        } catch let error as ValueReader.Underflow {
            throw IOASIDError.undecodable(database: db.name, key: StoreLayout.idKey(id), cause: error)
        }
    }

    /// Writes the free extent whose start this transaction moved (see
    /// ``TransactionState/pendingExtent``), if any.
    func flushPendingExtent() throws {
        guard let pending = context.state.pendingExtent else { return }
        context.state.pendingExtent = nil
        try txn.put(sealed: ByteWriter.u32(pending.first), forKey: StoreLayout.extentKey(last: pending.last), in: schema.control)
    }

    /// Writes the set records and the free extent changed in this transaction (a no-op in a read
    /// transaction, or when none changed). Runs before every commit and before
    /// anything scans the `control` database.
    func flushDeferredWrites() throws {
        try flushPendingExtent()
        guard context.state.dirtySets else { return }
        for (id, cached) in context.state.sets.sorted(by: { $0.key < $1.key }) where cached.dirty {
            let key = StoreLayout.setKey(id)
            if let record = cached.record {
                try txn.put(sealed: record.encoded(), forKey: key, in: schema.control)
            } else {
                try txn.delete(key, in: schema.control)
            }
            context.state.sets[id] = CachedSet(record: cached.record, dirty: false)
        }
        context.state.dirtySets = false
    }
}

extension WriteTransaction {
    /// Stores a sealed record.
    func put(_ payload: [UInt8], _ key: [UInt8], in db: Database) throws {
        try txn.put(sealed: payload, forKey: key, in: db)
    }

    /// Deletes a record; whether it was there.
    @discardableResult
    func remove(_ key: [UInt8], in db: Database) throws -> Bool { try txn.delete(key, in: db) }

    /// Changes a set record (written once, before commit).
    func putSet(_ record: SetRecord, _ set: SetID) {
        context.state.sets[set.rawValue] = CachedSet(record: record, dirty: true)
        context.state.noteDeferredWrite()
    }

    /// Removes a set record (before commit).
    func removeSet(_ set: SetID) {
        context.state.sets[set.rawValue] = CachedSet(record: nil, dirty: true)
        context.state.noteDeferredWrite()
    }

    /// Writes a `u32` or `u64` value of `meta`.
    func putMeta(_ key: [UInt8], u32 value: UInt32) throws { try put(ByteWriter.u32(value), key, in: schema.meta) }
    func putMeta(_ key: [UInt8], u64 value: UInt64) throws { try put(ByteWriter.u64(value), key, in: schema.meta) }
}

/// A set record as this transaction sees it: `record == nil` means deleted.
struct CachedSet {
    var record: SetRecord?
    var dirty: Bool
}

extension IOASIDError {
    /// A record whose checksum does not match.
    static func damaged(database: String, key: [UInt8], cause: DamagedRecord) -> IOASIDError {
        IOASIDError(.corruptStore, "the record under key \(Hex.encode(key)) in database \(database) is damaged (checksum mismatch)", cause: cause)
    }

    /// A record whose checksum matches but whose payload does not decode.
    static func undecodable(database: String, key: [UInt8], cause: (any Error & Sendable)? = nil) -> IOASIDError {
        IOASIDError(.corruptStore, "the record under key \(Hex.encode(key)) in database \(database) does not decode", cause: cause)
    }
}
