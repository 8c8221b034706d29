import LMDB

/// Capacity: the size of the ID space. IDs are 1 … capacity − 1; 0 is never handed out.
extension WriteTransaction {
    /// Largest capacity the store accepts (IDs are 32-bit).
    public static var maximumCapacity: UInt32 { .max }

    /// Writes a new store's capacity, system set and free index.
    func initialize(capacity: UInt32, systemQuota: UInt32, storeID: [UInt8], now: UInt64) throws {
        guard try txn.get(MetaKey.capacity, in: schema.meta) == nil else {
            throw IOASIDError(.alreadyInitialized, "the store is already initialised")
        }
        guard capacity >= 2 else {
            throw IOASIDError(.invalidArgument, "capacity must be at least 2 (ID 0 is reserved), got \(capacity)")
        }
        guard systemQuota >= 1, systemQuota <= capacity - 1 else {
            throw IOASIDError(.invalidArgument, "system quota must be between 1 and capacity − 1 (\(capacity - 1)), got \(systemQuota)")
        }
        try txn.put(Key.u32(capacity), forKey: MetaKey.capacity, in: schema.meta)
        try txn.put(storeID, forKey: MetaKey.storeID, in: schema.meta)
        var created = ByteWriter()
        created.u64(now)
        try txn.put(created.bytes, forKey: MetaKey.createdAt, in: schema.meta)
        try txn.put(Key.u32(SetID.system.rawValue + 1), forKey: MetaKey.nextSetID, in: schema.meta)
        try putReserved(UInt64(systemQuota))
        let system = SetRecord(token: "system", quota: systemQuota, flags: .system)
        try putSet(system, .system)
        try txn.put(Key.u32(SetID.system.rawValue), forKey: Array(system.token.utf8), in: schema.tokens)
        try giveFree(1...(capacity - 1))
    }

    /// Changes the capacity.
    ///
    /// Growing always succeeds. Shrinking succeeds only while no allocated or
    /// free-pending ID lies at or above the new capacity and every reserved
    /// quota still fits (Σ quotas ≤ new capacity − 1).
    ///
    /// - Throws: ``IOASIDError/Code/capacityInUse``, ``IOASIDError/Code/invalidArgument``.
    public func setCapacity(_ newCapacity: UInt32) throws {
        try operation {
            let old = try capacity()
            guard newCapacity >= 2 else {
                throw IOASIDError(.invalidArgument, "capacity must be at least 2 (ID 0 is reserved), got \(newCapacity)")
            }
            if newCapacity == old { return }
            if newCapacity > old {
                try txn.put(Key.u32(newCapacity), forKey: MetaKey.capacity, in: schema.meta)
                try giveFree(old...(newCapacity - 1))
                return
            }
            let reserved = try reservedQuota()
            guard reserved <= UInt64(newCapacity) - 1 else {
                throw IOASIDError(.capacityInUse, "cannot shrink capacity to \(newCapacity): \(reserved) IDs of quota are reserved")
            }
            if let highest = try txn.withCursor(on: schema.ids, { try $0.last() }), let id = Key.decodeU32(highest.key),
                id >= newCapacity
            {
                throw IOASIDError(.capacityInUse, "cannot shrink capacity to \(newCapacity): ID \(id) is in use")
            }
            try txn.put(Key.u32(newCapacity), forKey: MetaKey.capacity, in: schema.meta)
            try truncateFree(below: newCapacity)
        }
    }

    func putReserved(_ value: UInt64) throws {
        var w = ByteWriter()
        w.u64(value)
        try txn.put(w.bytes, forKey: MetaKey.reserved, in: schema.meta)
    }
}
