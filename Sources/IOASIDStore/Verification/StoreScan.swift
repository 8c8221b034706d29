import IOASIDMigrations
import LMDB

/// Every record of the store read once, tolerantly: what decodes is kept,
/// what does not is noted with its database and key. ``IOASIDReading/verify(progress:)``
/// checks the invariants on it and ``WriteTransaction/repair()`` rebuilds the
/// derived records from it, so both see the store the same way.
struct StoreScan {
    /// A record that could not be used: its seal fails, its payload does not decode, or its key is malformed.
    struct Damage {
        enum Kind: String {
            case checksum = "recordDamaged"
            case undecodable = "recordUndecodable"
            case malformedKey = "malformedKey"
        }

        let kind: Kind
        let database: String
        let key: [UInt8]

        /// Whether it is (or is keyed like) a free extent: the free index is
        /// derived, and its rebuild replaces every such key.
        var isFreeExtent: Bool { database == "control" && key.first == StoreLayout.ControlTag.free }

        var message: String {
            switch kind {
            case .checksum: "the record under key \(Hex.encode(key)) in database \(database) fails its checksum"
            case .undecodable: "the record under key \(Hex.encode(key)) in database \(database) does not decode"
            case .malformedKey: "database \(database) holds a malformed key \(Hex.encode(key))"
            }
        }
    }

    /// The parts of an ID record that verify and repair need.
    struct ScannedID {
        let id: UInt32
        let set: UInt32
        let isFreePending: Bool
        let guest: UInt32?
    }

    /// An event's kind code, set and ID.
    struct ScannedEvent {
        let sequence: UInt64
        let kind: UInt8
        let set: UInt32?
        let id: UInt32?
    }

    var damage: [Damage] = []
    /// Databases with at least one damaged record (derived records depending on them are not rebuilt).
    var damagedDatabases: Set<String> = []

    var capacity: UInt32?
    /// The capacity when its record is one an initialised store can have (at
    /// least 2: ID 0 is never handed out); verify and repair work only from it.
    var validCapacity: UInt32? { capacity.flatMap { $0 >= 2 ? $0 : nil } }
    var reserved: UInt64?
    var nextSetID: UInt32?
    var nextSequence: UInt64?

    var sets: [UInt32: SetRecord] = [:]
    /// Free extents in key order (by last ID).
    var extents: [ClosedRange<UInt32>] = []
    /// Every well-formed ID key, decodable or not, in order: never handed out again by a rebuilt free index.
    var occupied: [UInt32] = []
    /// The decodable ID records, in ID order.
    var ids: [ScannedID] = []
    var tokens: [String: UInt32] = [:]
    /// `set << 32 | guest` → host ID.
    var guests: [UInt64: UInt32] = [:]
    var pending: [UInt32: UInt64] = [:]
    /// Well-formed hold keys: (ID, holder).
    var holds: [(id: UInt32, holder: String, key: [UInt8])] = []
    var subscribers: [(name: String, record: SubscriberRecord)] = []
    var events: [ScannedEvent] = []

    /// The highest sequence handed out (0 when none).
    var lastSequence: UInt64 {
        max(events.last.map { $0.sequence + 1 } ?? 1, nextSequence ?? 1) - 1
    }

    mutating func note(_ kind: Damage.Kind, _ database: String, _ key: [UInt8]) {
        damage.append(Damage(kind: kind, database: database, key: key))
        damagedDatabases.insert(database)
    }
}

extension IOASIDReading where Self: ~Copyable {
    /// Reads every record of the store into a ``StoreScan``.
    ///
    /// - Parameter progress: called now and then with (IDs read, IDs in total).
    func scanStore(progress: ((Int, Int) -> Void)? = nil) throws -> StoreScan {
        try flushDeferredWrites()
        var scan = StoreScan()
        // Decodes the sealed payload of an entry of `db`, noting damage; `nil` when unusable.
        func payload<R>(_ entry: borrowing CursorEntry, _ db: String, _ decode: (inout ValueReader) throws -> R) -> R? {
            guard var reader = entry.sealedReader() else {
                scan.note(.checksum, db, entry.keyBytes())
                return nil
            }
            guard let value = try? decode(&reader) else {
                scan.note(.undecodable, db, entry.keyBytes())
                return nil
            }
            return value
        }
        func each(_ db: Database, from start: [UInt8] = [], _ body: (borrowing CursorEntry) throws -> Bool) throws {
            try txn.withCursor(on: db) { cursor in try cursor.forEach(from: start, body) }
        }
        func u32(_ r: inout ValueReader) throws -> UInt32 {
            let v = try r.u32()
            try r.end()
            return v
        }
        func u64(_ r: inout ValueReader) throws -> UInt64 {
            let v = try r.u64()
            try r.end()
            return v
        }

        try each(schema.meta) { entry in
            let key = entry.keyBytes()
            switch key {
            case StoreLayout.MetaKey.capacity: scan.capacity = payload(entry, "meta", u32)
            case StoreLayout.MetaKey.reserved: scan.reserved = payload(entry, "meta", u64)
            case StoreLayout.MetaKey.nextSetID: scan.nextSetID = payload(entry, "meta", u32)
            case StoreLayout.MetaKey.nextSequence: scan.nextSequence = payload(entry, "meta", u64)
            default: _ = payload(entry, "meta") { _ in () }
            }
            return true
        }
        try each(schema.control) { entry in
            switch entry.keyByte(at: 0) {
            case StoreLayout.ControlTag.set:
                guard entry.keyCount == 5, let id = entry.keyU32(at: 1) else {
                    scan.note(.malformedKey, "control", entry.keyBytes())
                    return true
                }
                if let record = payload(entry, "control", { try SetRecord(decoding: &$0) }) { scan.sets[id] = record }
            case StoreLayout.ControlTag.free:
                guard entry.keyCount == 5, let last = entry.keyU32(at: 1) else {
                    scan.note(.malformedKey, "control", entry.keyBytes())
                    return true
                }
                if let first = payload(entry, "control", u32) {
                    if first <= last { scan.extents.append(first...last) } else { scan.note(.undecodable, "control", entry.keyBytes()) }
                }
            default:
                scan.note(.malformedKey, "control", entry.keyBytes())
            }
            return true
        }
        let total = try txn.count(of: schema.ids)
        try each(schema.ids) { entry in
            guard entry.keyCount == 4, let id = entry.keyU32() else {
                scan.note(.malformedKey, "ids", entry.keyBytes())
                return true
            }
            scan.occupied.append(id)
            if scan.occupied.count % 65536 == 0 { progress?(scan.occupied.count, total) }
            if let record = payload(entry, "ids", { try IDRecord(decoding: &$0) }) {
                scan.ids.append(StoreScan.ScannedID(id: id, set: record.set, isFreePending: record.isFreePending, guest: record.guest))
            }
            return true
        }
        progress?(scan.occupied.count, total)
        try each(schema.tokens) { entry in
            guard let token = entry.keyText(), !token.isEmpty else {
                scan.note(.malformedKey, "tokens", entry.keyBytes())
                return true
            }
            if let set = payload(entry, "tokens", u32) { scan.tokens[token] = set }
            return true
        }
        try each(schema.guests) { entry in
            guard entry.keyCount == 8, let set = entry.keyU32(at: 0), let guest = entry.keyU32(at: 4) else {
                scan.note(.malformedKey, "guests", entry.keyBytes())
                return true
            }
            if let host = payload(entry, "guests", u32) { scan.guests[UInt64(set) << 32 | UInt64(guest)] = host }
            return true
        }
        try each(schema.pending) { entry in
            guard entry.keyCount == 4, let id = entry.keyU32() else {
                scan.note(.malformedKey, "pending", entry.keyBytes())
                return true
            }
            if let sequence = payload(entry, "pending", u64) { scan.pending[id] = sequence }
            return true
        }
        try each(schema.holds) { entry in
            guard entry.keyCount > 4, let id = entry.keyU32(), let holder = entry.keyText(from: 4) else {
                scan.note(.malformedKey, "holds", entry.keyBytes())
                return true
            }
            if payload(entry, "holds", { try $0.end() }) != nil { scan.holds.append((id, holder, entry.keyBytes())) }
            return true
        }
        try each(schema.subscribers) { entry in
            guard let name = entry.keyText(), !name.isEmpty else {
                scan.note(.malformedKey, "subscribers", entry.keyBytes())
                return true
            }
            if let record = payload(entry, "subscribers", { try SubscriberRecord(decoding: &$0) }) {
                scan.subscribers.append((name, record))
            }
            return true
        }
        try each(schema.events) { entry in
            guard let sequence = entry.keyU64() else {
                scan.note(.malformedKey, "events", entry.keyBytes())
                return true
            }
            if let record = payload(entry, "events", { try EventRecord(decoding: &$0) }) {
                if Event.Kind(code: record.kind) == nil {
                    scan.note(.undecodable, "events", entry.keyBytes())
                } else {
                    scan.events.append(StoreScan.ScannedEvent(sequence: sequence, kind: record.kind, set: record.set, id: record.id))
                }
            }
            return true
        }
        try each(schema.imports) { entry in
            if entry.keyCount != 16 {
                scan.note(.malformedKey, "imports", entry.keyBytes())
            } else {
                _ = payload(entry, "imports") { try ImportRecord(decoding: &$0) }
            }
            return true
        }
        return scan
    }
}

extension StoreScan {
    /// The free index the IDs imply: the complement of every ID key
    /// (decodable or not) in 1 … capacity − 1, as maximal extents.
    func expectedExtents(capacity: UInt32) -> [ClosedRange<UInt32>] {
        var expected: [ClosedRange<UInt32>] = []
        var next: UInt32 = 1
        for id in occupied where id >= 1 && id < capacity {
            if id > next { expected.append(next...(id - 1)) }
            next = id + 1
        }
        if next < capacity { expected.append(next...(capacity - 1)) }
        return expected
    }
}
