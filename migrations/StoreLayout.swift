public import LMDB

/// The storage layout of the current schema (version 5): which named
/// databases hold what, how keys are encoded and how each record is laid out.
/// The one home of the layout, used by the store, the tools and the tests.
///
/// Every value of every database except `migrations` is *sealed*: its payload
/// is followed by a CRC32C of key and payload (``Sealing``), checked on every
/// read. Integers are big-endian, so that LMDB's bytewise key order is numeric
/// order. Migrations keep their own frozen copies of what they rewrite.
///
/// | database | key | payload |
/// |---|---|---|
/// | `meta` | ASCII name (``MetaKey``) | per name: `capacity` u32, `reserved` u64, `next-set-id` u32, `store-id` 16 bytes, `created-at` u64 ms, `next-sequence` u64, `max-data-size` u32, `epoch` u32, `epochs` (u32 epoch, u64 start)…, `home` 16 bytes |
/// | `control` | `0x01 ‖ set` | ``SetRecord`` |
/// | `control` | `0x02 ‖ last` | free extent `first…last`: `first` u32 |
/// | `tokens` | owner token (UTF-8) | live set ID u32 |
/// | `ids` | ID u32 | ``IDRecord`` |
/// | `events` | sequence u64 | ``EventRecord`` |
/// | `subscribers` | name (UTF-8) | ``SubscriberRecord`` |
/// | `holds` | ID u32 ‖ holder (UTF-8) | empty |
/// | `pending` | ID u32 | sequence of its FREE u64 (0: none) |
/// | `guests` | set u32 ‖ guest u32 | host ID u32 |
/// | `imports` | export ID (16 bytes) | set u32 ‖ time u64 ms |
/// | `migrations` | number u32 | time u64 ms ‖ name (unsealed) |
package enum StoreLayout {
    /// The named databases the store keeps, sealed.
    package enum DB: String, CaseIterable, Sendable {
        case meta, control, tokens, ids, events, subscribers, holds, pending, guests, imports
    }

    /// The database of the migration history (not sealed: the migrator reads it before anything else).
    package static let historyDatabase = "migrations"

    // MARK: Keys

    /// The first byte of a key in `control`.
    package enum ControlTag {
        /// A set record.
        package static let set: UInt8 = 0x01
        /// A free extent.
        package static let free: UInt8 = 0x02
    }

    /// `0x01 ‖ set`: a set record in `control`.
    package static func setKey(_ set: UInt32) -> [UInt8] { taggedKey(ControlTag.set, set) }

    /// `0x02 ‖ last`: the free extent ending at `last` in `control`.
    package static func extentKey(last: UInt32) -> [UInt8] { taggedKey(ControlTag.free, last) }

    /// `tag ‖ value` (big-endian), built as one array: these keys are made on every
    /// allocation and free, where joining two arrays cost three allocations.
    private static func taggedKey(_ tag: UInt8, _ value: UInt32) -> [UInt8] {
        [tag, UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
         UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    /// An ID's key in `ids`, `pending`, and the prefix of its holds.
    package static func idKey(_ id: UInt32) -> [UInt8] { withIDKey(id) { Array($0) } }

    /// ``idKey(_:)`` built on the stack.
    package static func withIDKey<R>(_ id: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: id.bigEndian, body)
    }

    /// `set ‖ guest` in `guests`.
    package static func guestKey(set: UInt32, guest: UInt32) -> [UInt8] { withGuestKey(set: set, guest: guest) { Array($0) } }

    /// ``guestKey(set:guest:)`` built on the stack.
    package static func withGuestKey<R>(set: UInt32, guest: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: (UInt64(set) << 32 | UInt64(guest)).bigEndian, body)
    }

    /// `id ‖ holder` in `holds`.
    package static func holdKey(id: UInt32, holder: String) -> [UInt8] { BigEndian.bytes(id) + Array(holder.utf8) }

    /// An event's key in `events`.
    package static func sequenceKey(_ sequence: UInt64) -> [UInt8] { BigEndian.bytes(sequence) }

    /// A token's key in `tokens`.
    package static func tokenKey(_ token: String) -> [UInt8] { Array(token.utf8) }

    /// A subscriber's key in `subscribers`.
    package static func subscriberKey(_ name: String) -> [UInt8] { Array(name.utf8) }

    /// The key of a migration's history record: its number.
    package static func migrationKey(_ number: UInt32) -> [UInt8] { BigEndian.bytes(number) }

    /// The number of a history key, or `nil` when it is malformed.
    package static func decodeMigrationKey(_ key: [UInt8]) -> UInt32? { key.count == 4 ? BigEndian.u32(key) : nil }

    /// A history record's value: when it was applied (Unix milliseconds, big-endian) and its name.
    package static func migrationValue(appliedAt milliseconds: UInt64, name: String) -> [UInt8] {
        BigEndian.bytes(milliseconds) + Array(name.utf8)
    }

    /// The name in a history record's value, or `nil` when the value is too short or not UTF-8.
    package static func decodeMigrationName(_ value: [UInt8]) -> String? {
        value.count > 8 ? String(validating: value[8...], as: UTF8.self) : nil
    }

    /// Names of the values in `meta`.
    package enum MetaKey {
        /// u32: IDs run from 1 to capacity − 1.
        package static let capacity = Array("capacity".utf8)
        /// u64: Σ of every set's quota.
        package static let reserved = Array("reserved".utf8)
        /// u32: the ID the next set gets.
        package static let nextSetID = Array("next-set-id".utf8)
        /// 16 random bytes chosen at initialisation.
        package static let storeID = Array("store-id".utf8)
        /// u64: milliseconds since 1970 at initialisation.
        package static let createdAt = Array("created-at".utf8)
        /// u64: the next event sequence, kept for when the outbox is empty.
        package static let nextSequence = Array("next-sequence".utf8)
        /// u32: the most bytes of private data an ID may carry (absent: 4096).
        package static let maximumDataSize = Array("max-data-size".utf8)
        /// u32: the store's epoch (absent: 1). A restored copy starts a new one.
        package static let epoch = Array("epoch".utf8)
        /// The epochs of the store's history, oldest first, as `u32 epoch ‖ u64 start`
        /// pairs, where `start` is the last sequence before the epoch began
        /// (absent: the current epoch alone, from 0).
        package static let epochs = Array("epochs".utf8)
        /// u64 device ‖ u64 inode of the `data.mdb` this store was last written as:
        /// a different file (a restored backup, a copy) starts a new epoch.
        package static let home = Array("home".utf8)
    }
}

/// A record's payload does not decode.
@usableFromInline package struct DecodingFailure: Error, Sendable {
    @inlinable package init() {}
}

/// Appends fixed-width big-endian integers and length-prefixed bytes.
package struct ByteWriter {
    package private(set) var bytes: [UInt8] = []

    package init(capacity: Int = 16) { bytes.reserveCapacity(capacity) }

    package mutating func u8(_ v: UInt8) { bytes.append(v) }
    package mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    package mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    package mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    package mutating func raw(_ v: [UInt8]) { bytes.append(contentsOf: v) }
    package mutating func blob(_ v: [UInt8]) {
        u32(UInt32(truncatingIfNeeded: v.count))
        bytes.append(contentsOf: v)
    }
    package mutating func string(_ v: String) { blob(Array(v.utf8)) }

    /// The encoding of one `UInt32`.
    package static func u32(_ v: UInt32) -> [UInt8] { BigEndian.bytes(v) }
    /// The encoding of one `UInt64`.
    package static func u64(_ v: UInt64) -> [UInt8] { BigEndian.bytes(v) }
}

extension ValueReader {
    /// A length-prefixed UTF-8 string.
    package mutating func string() throws -> String {
        let count = Int(try u32())
        guard count <= remaining, let text = String(validating: try bytes(count), as: UTF8.self) else { throw DecodingFailure() }
        return text
    }

    /// Fails unless every byte was read.
    @inlinable package func end() throws {
        guard remaining == 0 else { throw DecodingFailure() }
    }
}

// MARK: Records

/// A set (`control`, key `0x01 ‖ set`).
///
/// Version 2 (schema 5): `u8 version, u8 flags, u32 quota, u32 count, u32 pending,
/// u32 token length, token, u64 lease ms (0: none), u64 renewed-at ms,
/// u32 owner pid (0: none), u64 owner start time (clock ticks after boot)`.
/// Version 1 (schema ≤ 4) ends after the token; it reads as no lease and no owner.
package struct SetRecord: Equatable, Sendable {
    /// The set's flags.
    package struct Flags: OptionSet, Equatable, Sendable {
        package let rawValue: UInt8
        package init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The system set.
        package static let system = Flags(rawValue: 1 << 0)
        /// Frozen for migration.
        package static let frozen = Flags(rawValue: 1 << 1)
        /// Destroyed, waiting for its last free-pending ID.
        package static let destroyPending = Flags(rawValue: 1 << 2)
    }

    package var token: String
    package var quota: UInt32
    /// IDs that belong to the set: allocated plus free-pending. Counts against the quota.
    package var count: UInt32
    /// Of ``count``, the IDs that are free-pending.
    package var pending: UInt32
    package var flags: Flags
    /// The lease in milliseconds (0: none): the set is reaped when not renewed for two lease periods.
    package var leaseMillis: UInt64 = 0
    /// When the lease was last renewed (milliseconds since 1970).
    package var renewedAt: UInt64 = 0
    /// The owning process (0: none): the set is reaped when it is gone.
    package var ownerPID: UInt32 = 0
    /// The owning process's start time, so that a reused PID does not count as alive.
    package var ownerStartTime: UInt64 = 0

    /// A set is live until it is destroyed (or waits to be).
    package var isLive: Bool { !flags.contains(.destroyPending) }

    package init(token: String, quota: UInt32, count: UInt32 = 0, pending: UInt32 = 0, flags: Flags = []) {
        self.token = token
        self.quota = quota
        self.count = count
        self.pending = pending
        self.flags = flags
    }

    package func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 46 + token.utf8.count)
        w.u8(2)
        w.u8(flags.rawValue)
        w.u32(quota)
        w.u32(count)
        w.u32(pending)
        w.string(token)
        w.u64(leaseMillis)
        w.u64(renewedAt)
        w.u32(ownerPID)
        w.u64(ownerStartTime)
        return w.bytes
    }

    package init(decoding r: inout ValueReader) throws {
        let version = try r.u8()
        guard version == 1 || version == 2 else { throw DecodingFailure() }
        flags = Flags(rawValue: try r.u8())
        quota = try r.u32()
        count = try r.u32()
        pending = try r.u32()
        token = try r.string()
        if version == 2 {
            leaseMillis = try r.u64()
            renewedAt = try r.u64()
            ownerPID = try r.u32()
            ownerStartTime = try r.u64()
        }
        try r.end()
    }
}

/// An allocated or free-pending ID (`ids`): `u8 version (1), u8 state
/// (0 allocated, 1 free-pending), u32 set, u8 hasGuest, [u32 guest], u32 data length, data`.
package struct IDRecord: Equatable, Sendable {
    package var set: UInt32
    package var isFreePending: Bool
    package var guest: UInt32?
    package var data: [UInt8]

    package init(set: UInt32, isFreePending: Bool = false, guest: UInt32? = nil, data: [UInt8] = []) {
        self.set = set
        self.isFreePending = isFreePending
        self.guest = guest
        self.data = data
    }

    package func encoded() -> [UInt8] {
        let size = Self.encodedSize(guest: guest, dataCount: data.count)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            data.withUnsafeBytes { d in
                Self.encode(set: set, isFreePending: isFreePending, guest: guest, data: d, into: UnsafeMutableRawBufferPointer(buffer))
            }
            initialized = size
        }
    }

    /// The size of an ID record's encoding.
    package static func encodedSize(guest: UInt32?, dataCount: Int) -> Int { 11 + (guest == nil ? 0 : 4) + dataCount }

    /// Writes an ID record's encoding into `out` (exactly ``encodedSize(guest:dataCount:)`` bytes),
    /// for writers that encode straight into the database's room:
    /// `u8 1, u8 freePending, u32 set, u8 hasGuest, [u32 guest], u32 length, data`.
    package static func encode(
        set: UInt32, isFreePending: Bool, guest: UInt32?, data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer
    ) {
        precondition(out.count == encodedSize(guest: guest, dataCount: data.count))
        out[0] = 1
        out[1] = isFreePending ? 1 : 0
        out.storeBytes(of: set.bigEndian, toByteOffset: 2, as: UInt32.self)
        var at = 7
        if let guest {
            out[6] = 1
            out.storeBytes(of: guest.bigEndian, toByteOffset: 7, as: UInt32.self)
            at = 11
        } else {
            out[6] = 0
        }
        out.storeBytes(of: UInt32(truncatingIfNeeded: data.count).bigEndian, toByteOffset: at, as: UInt32.self)
        UnsafeMutableRawBufferPointer(rebasing: out[(at + 4)...]).copyMemory(from: data)
    }

    // Inlinable, like the owner's decoder below: lookups decode an ID record each, and
    // a call per field (across the module boundary) cost more than the fields.
    @inlinable package init(decoding r: inout ValueReader) throws {
        guard try r.u8() == 1 else { throw DecodingFailure() }
        switch try r.u8() {
        case 0: isFreePending = false
        case 1: isFreePending = true
        default: throw DecodingFailure()
        }
        set = try r.u32()
        switch try r.u8() {
        case 0: guest = nil
        case 1: guest = try r.u32()
        default: throw DecodingFailure()
        }
        let count = Int(try r.u32())
        guard count <= r.remaining else { throw DecodingFailure() }
        data = try r.bytes(count)
        try r.end()
    }

    /// Just the owning set, without decoding the rest.
    @inlinable package static func owner(decoding r: inout ValueReader) throws -> UInt32 {
        guard try r.u8() == 1 else { throw DecodingFailure() }
        _ = try r.u8()
        return try r.u32()
    }
}

/// An outbox event (`events`).
///
/// Version 2 (schema 5): `u8 version, u8 kind, u64 timestamp, u32 set,
/// u8 fields, [u32 id], [u32 quota], [u32 guest], [u8 destroy], [u32 capacity],
/// [u32 subscriber length, subscriber], u32 token length, token, u32 epoch`,
/// where `fields` says which optional values follow (the set is meaningful
/// only with `hasSet`). Version 1 (schema ≤ 4) has no capacity, subscriber,
/// epoch or `hasSet` (its set is always meaningful) and reads as epoch 1.
package struct EventRecord: Equatable, Sendable {
    package var kind: UInt8
    package var timestamp: UInt64
    /// The set concerned; `nil` for store-wide events (capacity, subscribers).
    package var set: UInt32?
    package var id: UInt32?
    package var quota: UInt32?
    package var guest: UInt32?
    package var destroy: Bool?
    package var capacity: UInt32?
    package var subscriber: String?
    package var token: String
    /// The store epoch the event was committed in.
    package var epoch: UInt32

    private static let hasID: UInt8 = 1 << 0
    private static let hasQuota: UInt8 = 1 << 1
    private static let hasGuest: UInt8 = 1 << 2
    private static let hasDestroy: UInt8 = 1 << 3
    private static let hasCapacity: UInt8 = 1 << 4
    private static let hasSubscriber: UInt8 = 1 << 5
    private static let hasSet: UInt8 = 1 << 6

    package init(
        kind: UInt8, timestamp: UInt64, set: UInt32?, token: String, epoch: UInt32,
        id: UInt32? = nil, quota: UInt32? = nil, guest: UInt32? = nil, destroy: Bool? = nil,
        capacity: UInt32? = nil, subscriber: String? = nil
    ) {
        self.kind = kind
        self.timestamp = timestamp
        self.set = set
        self.token = token
        self.epoch = epoch
        self.id = id
        self.quota = quota
        self.guest = guest
        self.destroy = destroy
        self.capacity = capacity
        self.subscriber = subscriber
    }

    package func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 40 + token.utf8.count)
        w.u8(2)
        w.u8(kind)
        w.u64(timestamp)
        w.u32(set ?? 0)
        var fields: UInt8 = 0
        if set != nil { fields |= Self.hasSet }
        if id != nil { fields |= Self.hasID }
        if quota != nil { fields |= Self.hasQuota }
        if guest != nil { fields |= Self.hasGuest }
        if destroy != nil { fields |= Self.hasDestroy }
        if capacity != nil { fields |= Self.hasCapacity }
        if subscriber != nil { fields |= Self.hasSubscriber }
        w.u8(fields)
        if let id { w.u32(id) }
        if let quota { w.u32(quota) }
        if let guest { w.u32(guest) }
        if let destroy { w.u8(destroy ? 1 : 0) }
        if let capacity { w.u32(capacity) }
        if let subscriber { w.string(subscriber) }
        w.string(token)
        w.u32(epoch)
        return w.bytes
    }

    package init(decoding r: inout ValueReader) throws {
        let version = try r.u8()
        guard version == 1 || version == 2 else { throw DecodingFailure() }
        kind = try r.u8()
        timestamp = try r.u64()
        let set = try r.u32()
        let fields = try r.u8()
        let known = version == 1
            ? Self.hasID | Self.hasQuota | Self.hasGuest | Self.hasDestroy
            : Self.hasID | Self.hasQuota | Self.hasGuest | Self.hasDestroy | Self.hasCapacity | Self.hasSubscriber | Self.hasSet
        guard fields & ~known == 0 else { throw DecodingFailure() }
        self.set = version == 1 || fields & Self.hasSet != 0 ? set : nil
        id = fields & Self.hasID != 0 ? try r.u32() : nil
        quota = fields & Self.hasQuota != 0 ? try r.u32() : nil
        guest = fields & Self.hasGuest != 0 ? try r.u32() : nil
        destroy = fields & Self.hasDestroy != 0 ? try r.u8() == 1 : nil
        capacity = fields & Self.hasCapacity != 0 ? try r.u32() : nil
        subscriber = fields & Self.hasSubscriber != 0 ? try r.string() : nil
        token = try r.string()
        epoch = version == 2 ? try r.u32() : 1
        try r.end()
    }

    /// Just the kind and set (`nil` for a store-wide event), to test a filter without decoding the rest.
    package static func kindAndSet(decoding r: inout ValueReader) throws -> (kind: UInt8, set: UInt32?) {
        let version = try r.u8()
        guard version == 1 || version == 2 else { throw DecodingFailure() }
        let kind = try r.u8()
        _ = try r.u64()
        let set = try r.u32()
        let fields = try r.u8()
        return (kind, version == 1 || fields & hasSet != 0 ? set : nil)
    }
}

/// A durable subscriber (`subscribers`).
///
/// Version 2 (schema 5): `u8 version, u64 acknowledged-through, u8 hasSets,
/// [u32 count, count × u32 set], u8 hasKinds, [u16 kind bitmask], u8 kind
/// (0 gating, 1 observer), u8 state (0 active, 1 lapsed), u64 max lag in
/// events (0: none), u64 max age in ms (0: none), u32 count, count × (u32
/// length, name)` of the subscribers it runs after. Version 1 (schema ≤ 4)
/// ends after the kinds and reads as an active gating subscriber without limits.
package struct SubscriberRecord: Equatable, Sendable {
    package var acknowledgedThrough: UInt64
    /// Only these sets; `nil`: every set (and store-wide events).
    package var sets: Set<UInt32>?
    /// Only the kinds whose bit (1 << kind code) is set; `nil`: every kind.
    package var kindMask: UInt16?
    /// An observer receives events but never holds an ID back.
    package var isObserver: Bool = false
    /// A lapsed subscriber receives nothing and holds nothing back until it resynchronises.
    package var isLapsed: Bool = false
    /// Lapse when more than this many events are unacknowledged (0: never).
    package var maxLag: UInt64 = 0
    /// Lapse when the oldest unacknowledged event is older than this, in ms (0: never).
    package var maxAgeMillis: UInt64 = 0
    /// The subscribers whose acknowledgement this one waits for.
    package var after: [String] = []
    /// With a lag limit: how many events it takes lie in
    /// `(acknowledgedThrough, countedThrough]` (kept up to date at each commit).
    package var pendingCount: UInt64 = 0
    /// With a lag limit: the last sequence `pendingCount` covers.
    package var countedThrough: UInt64 = 0

    package init(acknowledgedThrough: UInt64, sets: Set<UInt32>?, kindMask: UInt16?) {
        self.acknowledgedThrough = acknowledgedThrough
        self.sets = sets
        self.kindMask = kindMask
    }

    /// Whether the filter takes an event of `kind` (its code) about `set`
    /// (`nil`: a store-wide event, taken only without a set filter). A lapsed
    /// subscriber takes nothing.
    package func takes(kind: UInt8, set: UInt32?) -> Bool {
        guard !isLapsed else { return false }
        let setMatches = set.map { set in sets?.contains(set) ?? true } ?? (sets == nil)
        return setMatches && (kindMask.map { kind < 16 && $0 & (1 << UInt16(kind)) != 0 } ?? true)
    }

    /// Whether it holds back the IDs whose FREE it takes until it acknowledges them.
    package var isGating: Bool { !isObserver && !isLapsed }

    package func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u8(2)
        w.u64(acknowledgedThrough)
        if let sets {
            w.u8(1)
            w.u32(UInt32(sets.count))
            for set in sets.sorted() { w.u32(set) }
        } else {
            w.u8(0)
        }
        if let kindMask {
            w.u8(1)
            w.u16(kindMask)
        } else {
            w.u8(0)
        }
        w.u8(isObserver ? 1 : 0)
        w.u8(isLapsed ? 1 : 0)
        w.u64(maxLag)
        w.u64(maxAgeMillis)
        w.u32(UInt32(after.count))
        for name in after { w.string(name) }
        w.u64(pendingCount)
        w.u64(countedThrough)
        return w.bytes
    }

    package init(decoding r: inout ValueReader) throws {
        let version = try r.u8()
        guard version == 1 || version == 2 else { throw DecodingFailure() }
        acknowledgedThrough = try r.u64()
        switch try r.u8() {
        case 0: sets = nil
        case 1:
            let count = Int(try r.u32())
            guard count <= r.remaining / 4 else { throw DecodingFailure() }
            var sets = Set<UInt32>()
            for _ in 0..<count { sets.insert(try r.u32()) }
            self.sets = sets
        default: throw DecodingFailure()
        }
        switch try r.u8() {
        case 0: kindMask = nil
        case 1: kindMask = try r.u16()
        default: throw DecodingFailure()
        }
        if version == 2 {
            switch try r.u8() {
            case 0: isObserver = false
            case 1: isObserver = true
            default: throw DecodingFailure()
            }
            switch try r.u8() {
            case 0: isLapsed = false
            case 1: isLapsed = true
            default: throw DecodingFailure()
            }
            maxLag = try r.u64()
            maxAgeMillis = try r.u64()
            let count = Int(try r.u32())
            guard count <= r.remaining / 4 else { throw DecodingFailure() }
            for _ in 0..<count { after.append(try r.string()) }
            pendingCount = try r.u64()
            countedThrough = try r.u64()
        }
        try r.end()
    }
}

/// An imported export (`imports`): `u32 set, u64 time`.
package struct ImportRecord: Equatable, Sendable {
    package var set: UInt32
    package var importedAt: UInt64

    package init(set: UInt32, importedAt: UInt64) {
        self.set = set
        self.importedAt = importedAt
    }

    package func encoded() -> [UInt8] { ByteWriter.u32(set) + ByteWriter.u64(importedAt) }

    package init(decoding r: inout ValueReader) throws {
        set = try r.u32()
        importedAt = try r.u64()
        try r.end()
    }
}

// MARK: Text encodings

/// Lowercase hex: private data in exports and on the command line.
package enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// `bytes` as lowercase hex digits.
    package static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the hex digits of `bytes` to `out` (for encoders that build bytes).
    package static func append(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
    }

    /// The bytes of an even number of hex digits (either case), or `nil`.
    package static func decode<C: Collection<UInt8>>(_ utf8: C) -> [UInt8]? {
        // One non-generic loop: callers in other modules would otherwise run
        // the generic, unspecialised one per digit.
        if let bytes = utf8.withContiguousStorageIfAvailable({ decode(buffer: $0) }) { return bytes }
        return Array(utf8).withUnsafeBufferPointer { decode(buffer: $0) }
    }

    private static func decode(buffer utf8: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        return decode(utf8, appendingTo: &out) ? out : nil
    }

    /// Appends the bytes of an even number of hex digits (either case) to `out`;
    /// `false`, with `out` in an unspecified state, when they are not hex.
    package static func decode(_ utf8: UnsafeBufferPointer<UInt8>, appendingTo out: inout [UInt8]) -> Bool {
        guard utf8.count % 2 == 0 else { return false }
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return false }
            out.append(high << 4 | low)
            index += 2
        }
        return true
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// ``decode(_:)`` of a string.
    package static func decode(_ text: String) -> [UInt8]? { decode(Array(text.utf8)) }
}

/// The 16 bytes of a UUID in its canonical text form (`8-4-4-4-12` hex digits), or `nil`.
package enum UUIDBytes {
    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    package static func parse(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count == 36, [8, 13, 18, 23].allSatisfy({ utf8[$0] == UInt8(ascii: "-") }) else { return nil }
        let digits = utf8.enumerated().filter { ![8, 13, 18, 23].contains($0.offset) }.map(\.element)
        guard let bytes = Hex.decode(digits), bytes.count == 16 else { return nil }
        return bytes
    }

    /// The canonical lowercase text of 16 bytes.
    package static func format(_ bytes: [UInt8]) -> String {
        let hex = Array(Hex.encode(bytes).utf8)
        var out = [UInt8]()
        for (i, c) in hex.enumerated() {
            if [8, 12, 16, 20].contains(i) { out.append(UInt8(ascii: "-")) }
            out.append(c)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
