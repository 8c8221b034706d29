import IOASIDMigrations

/// A set as seen by callers.
public struct SetInfo: Sendable, Codable, Equatable {
    /// The set's ID.
    public let id: SetID
    /// The owner token, unique among live sets (for example `vm:<uuid>`).
    public let token: String
    /// The most IDs the set may hold; reserved from capacity when the set was created.
    public let quota: UInt32
    /// IDs the set holds (allocated and free-pending); counts against ``quota``.
    public let allocated: UInt32
    /// Of ``allocated``, the IDs that are free-pending.
    public let freePending: UInt32
    /// Whether this is the system set.
    public let isSystem: Bool
    /// Whether the set is frozen for migration.
    public let isFrozen: Bool
    /// Whether the set was destroyed and waits for its last free-pending ID.
    public let isDestroyPending: Bool
    /// The set's lease in milliseconds, if it has one (see ``SetOwner``).
    public let leaseMillis: UInt64?
    /// When the lease was last renewed (milliseconds since 1970), if the set has a lease.
    public let renewedAt: UInt64?
    /// The process that owns the set, if any (see ``SetOwner``).
    public let ownerProcess: Int32?

    init(id: UInt32, record: SetRecord) {
        self.id = SetID(id)
        token = record.token
        quota = record.quota
        allocated = record.count
        freePending = record.pending
        isSystem = record.flags.contains(.system)
        isFrozen = record.flags.contains(.frozen)
        isDestroyPending = record.flags.contains(.destroyPending)
        leaseMillis = record.leaseMillis == 0 ? nil : record.leaseMillis
        renewedAt = record.leaseMillis == 0 ? nil : record.renewedAt
        ownerProcess = record.ownerPID == 0 ? nil : Int32(bitPattern: record.ownerPID)
    }
}

/// An allocated (or free-pending) ID as seen by callers.
public struct IDInfo: Sendable, Codable, Equatable {
    /// The ID.
    public let id: IOASID
    /// The set that owns it.
    public let set: SetID
    /// Allocated, or freed and waiting to be reclaimed.
    public let state: IDState
    /// The guest ID mapped to it inside its set, if any.
    public let guest: UInt32?
    /// The opaque private data stored with it.
    public let data: [UInt8]
    /// For a free-pending ID, the holders that still hold it.
    public let holders: [String]
    /// For a free-pending ID, the gating subscribers that have not acknowledged its FREE.
    public let waitingFor: [String]

    init(id: UInt32, record: IDRecord, holders: [String] = [], waitingFor: [String] = []) {
        self.id = IOASID(id)
        set = SetID(record.set)
        state = record.isFreePending ? .freePending : .allocated
        guest = record.guest
        data = record.data
        self.holders = holders
        self.waitingFor = waitingFor
    }
}

/// Store-wide figures.
public struct StoreStatus: Sendable, Codable, Equatable {
    /// IDs run from 1 to `capacity − 1`.
    public let capacity: UInt32
    /// Σ of every live set's quota.
    public let reserved: UInt64
    /// `capacity − 1 − reserved`: what new sets and quota increases can still take.
    public let unreserved: UInt64
    /// IDs held by sets (allocated and free-pending).
    public let allocated: UInt64
    /// IDs freed but not yet reclaimed.
    public let freePending: UInt64
    /// Every set, live or waiting to be destroyed.
    public let sets: [SetInfo]
    /// Every durable subscriber, with its lag.
    public let subscribers: [SubscriberInfo]
    /// The highest event sequence number handed out so far.
    public let lastSequence: UInt64
}

/// What ``WriteTransaction/freeSet(_:destroy:)`` did.
public struct FreeSetResult: Sendable, Codable, Equatable {
    /// The IDs that were freed by this call (each with one FREE).
    public let freed: [IOASID]
    /// Whether the set is gone now (it may instead wait for free-pending IDs).
    public let destroyed: Bool
}

/// The state of an ID that belongs to a set.
public enum IDState: String, Sendable, Codable {
    /// Allocated and in use.
    case allocated
    /// Freed by its owner, waiting for holders and subscribers to let go before it returns to the pool.
    case freePending
}
