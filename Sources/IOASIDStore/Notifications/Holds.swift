import LMDB

/// Holds: the persistent form of the kernel's `ioasid_get`/`ioasid_put`.
/// A held ID that its owner frees stays free-pending until every holder releases it.
extension IOASIDReading where Self: ~Copyable {
    /// The names of the holders of `id`, in order.
    public func holders(of id: IOASID) throws -> [String] {
        let prefix = Key.u32(id.rawValue)
        return try txn.withCursor(on: schema.holds) { cursor in
            var names: [String] = []
            try cursor.scan(from: prefix) { key, _ in
                guard key.count > 4, Array(key.prefix(4)) == prefix else { return false }
                names.append(String(decoding: key.dropFirst(4), as: UTF8.self))
                return true
            }
            return names
        }
    }

    /// The sequence number of the FREE event of a free-pending ID (0 when none was stored).
    func freeSequence(of id: IOASID) throws -> UInt64? {
        try txn.withValue(forKey: id.rawValue, in: schema.pending) { reader in
            try decoding("pending ID \(id)") { try reader.u64() }
        }
    }

    /// Whether a holder, or a subscriber that has not acknowledged the ID's FREE, holds it back.
    func isHeldBack(_ id: IOASID, set: SetID) throws -> Bool {
        if try !holders(of: id).isEmpty { return true }
        guard let sequence = try freeSequence(of: id), sequence > 0 else { return false }
        return try subscriberRecords().contains {
            $0.record.acknowledgedThrough < sequence && $0.record.filter.matches(.free, set: set)
        }
    }
}

extension WriteTransaction {
    /// Takes a durable hold on an allocated ID for `holder` (kernel `ioasid_get`).
    ///
    /// - Returns: `false` when `holder` already held it.
    /// - Throws: ``IOASIDError/Code/noSuchID``, ``IOASIDError/Code/wrongSet``,
    ///   ``IOASIDError/Code/idFreePending`` (kernel `-EBUSY`), ``IOASIDError/Code/invalidArgument``.
    @discardableResult
    public func retain(_ id: IOASID, in set: SetID, holder: String) throws -> Bool {
        try operation {
            guard !holder.isEmpty, holder.utf8.count <= 128 else {
                throw IOASIDError(.invalidArgument, "a holder name must be 1 to 128 bytes long")
            }
            let record = try ownedRecord(id, in: set)
            guard record.state == .allocated else {
                throw IOASIDError(.idFreePending, "ID \(id) is free-pending and cannot be retained")
            }
            return try txn.put([], forKey: Key.u32(id.rawValue) + Array(holder.utf8), in: schema.holds, overwrite: false)
        }
    }

    /// Releases `holder`'s hold (kernel `ioasid_put`); a free-pending ID that
    /// nothing else holds back is reclaimed.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchID``, ``IOASIDError/Code/wrongSet``,
    ///   ``IOASIDError/Code/noSuchHold``.
    public func release(_ id: IOASID, in set: SetID, holder: String) throws {
        try operation {
            let record = try ownedRecord(id, in: set)
            guard try txn.delete(Key.u32(id.rawValue) + Array(holder.utf8), in: schema.holds) else {
                throw IOASIDError(.noSuchHold, "\"\(holder)\" does not hold ID \(id)")
            }
            if record.state == .freePending { try reclaimIfReleased(id) }
        }
    }
}
