import IOASIDMigrations
import LMDB

/// Capacity: the size of the ID space. IDs are 1 … capacity − 1; 0 is never handed out.
extension IOASIDReading where Self: ~Copyable {
    /// `capacity − 1 − reserved`: what new sets and quota increases can still take
    /// (the one definition of unreserved capacity).
    public func unreservedQuota() throws -> UInt64 {
        Self.unreserved(capacity: try capacity(), reserved: try reservedQuota())
    }

    /// `capacity − 1 − reserved`, never below zero.
    static func unreserved(capacity: UInt32, reserved: UInt64) -> UInt64 {
        let usable = UInt64(capacity) - 1
        return usable - min(reserved, usable)
    }

    /// Whether Σ quotas exceeds the IDs there are (1 … capacity − 1): verify
    /// reports it, and repair leaves it to the operator.
    static func isOverReserved(capacity: UInt32, reserved: UInt64) -> Bool {
        reserved > UInt64(capacity) - 1
    }
}

extension WriteTransaction {
    /// Largest capacity the store accepts (IDs are 32-bit).
    public static var maximumCapacity: UInt32 { .max }

    /// Writes a new store's capacity, system set and free index.
    func initialize(capacity: UInt32, systemQuota: UInt32, maximumDataSize: UInt32, storeID: [UInt8], now: UInt64) throws {
        guard try metaU32(StoreLayout.MetaKey.capacity) == nil else {
            throw IOASIDError(.alreadyInitialized, "the store is already initialised")
        }
        guard capacity >= 2 else {
            throw IOASIDError(.invalidArgument, "capacity must be at least 2 (ID 0 is reserved), got \(capacity)")
        }
        guard systemQuota >= 1, systemQuota <= capacity - 1 else {
            throw IOASIDError(.invalidArgument, "system quota must be between 1 and capacity − 1 (\(capacity - 1)), got \(systemQuota)")
        }
        guard maximumDataSize <= IOASIDStore.largestDataSizeLimit else {
            throw IOASIDError(.invalidArgument, "the private data limit must be at most \(IOASIDStore.largestDataSizeLimit) bytes, got \(maximumDataSize)")
        }
        try putMeta(StoreLayout.MetaKey.capacity, u32: capacity)
        try putMeta(StoreLayout.MetaKey.maximumDataSize, u32: maximumDataSize)
        try put(storeID, StoreLayout.MetaKey.storeID, in: schema.meta)
        try putMeta(StoreLayout.MetaKey.createdAt, u64: now)
        try putMeta(StoreLayout.MetaKey.nextSetID, u32: SetID.system.rawValue + 1)
        try putMeta(StoreLayout.MetaKey.reserved, u64: UInt64(systemQuota))
        let system = SetRecord(token: "system", quota: systemQuota, flags: .system)
        putSet(system, .system)
        try put(ByteWriter.u32(SetID.system.rawValue), StoreLayout.tokenKey(system.token), in: schema.tokens)
        context.state.capacity = capacity
        try giveFree(1...(capacity - 1))
    }

    /// Changes the capacity.
    ///
    /// Growing always succeeds. Shrinking succeeds only while no allocated or
    /// free-pending ID lies at or above the new capacity and every reserved
    /// quota still fits (Σ quotas ≤ new capacity − 1).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/capacityInUse``, ``IOASIDError/Code-swift.struct/invalidArgument``.
    public func setCapacity(_ newCapacity: UInt32) throws {
        try operation {
            let old = try capacity()
            guard newCapacity >= 2 else {
                throw IOASIDError(.invalidArgument, "capacity must be at least 2 (ID 0 is reserved), got \(newCapacity)")
            }
            if newCapacity == old { return }
            if newCapacity > old {
                try putMeta(StoreLayout.MetaKey.capacity, u32: newCapacity)
                context.state.capacity = newCapacity
                try giveFree(old...(newCapacity - 1))
                try emit(.capacity, set: nil, token: "", capacity: newCapacity)
                return
            }
            let reserved = try reservedQuota()
            guard reserved <= UInt64(newCapacity) - 1 else {
                throw IOASIDError(.capacityInUse, "cannot shrink capacity to \(newCapacity): \(reserved) IDs of quota are reserved")
            }
            if let highest = try txn.withCursor(on: schema.ids, { try $0.withLast { $0.keyU32() } }) ?? nil, highest >= newCapacity {
                throw IOASIDError(.capacityInUse, "cannot shrink capacity to \(newCapacity): ID \(highest) is in use")
            }
            try putMeta(StoreLayout.MetaKey.capacity, u32: newCapacity)
            context.state.capacity = newCapacity
            try truncateFree(below: newCapacity)
            try emit(.capacity, set: nil, token: "", capacity: newCapacity)
        }
    }

    /// Writes Σ quotas.
    func putReserved(_ value: UInt64) throws { try putMeta(StoreLayout.MetaKey.reserved, u64: value) }
}
