import LMDB

/// One broken invariant found by ``IOASIDReading/verify(progress:)``.
public struct Violation: Sendable, Codable, Equatable {
    /// A stable code, for example `freeIndexGap` or `setCountMismatch`.
    public let code: String
    /// What is wrong, for people.
    public let message: String
    /// The records involved (for example `id 17`, `set 3`, `event 42`).
    public let records: [String]
}

/// The result of a verification.
public struct VerificationReport: Sendable, Codable, Equatable {
    /// The first 1,000 violations found.
    public let violations: [Violation]
    /// How many violations there were in all.
    public let violationCount: Int
    /// How many IDs were checked.
    public let idsChecked: Int
    /// Whether every invariant holds.
    public var isClean: Bool { violationCount == 0 }
}

/// What ``WriteTransaction/repair()`` changed.
public struct RepairReport: Sendable, Codable, Equatable {
    /// One line per change.
    public let changes: [String]
    /// Problems repair cannot fix without dropping data (for example an ID whose set is gone).
    public let unrepairable: [Violation]
}

/// Collects violations, keeping the first 1,000.
struct ViolationLog {
    private(set) var list: [Violation] = []
    private(set) var count = 0

    mutating func add(_ code: String, _ message: String, _ records: String...) {
        count += 1
        if list.count < 1000 { list.append(Violation(code: code, message: message, records: records)) }
    }
}

extension IOASIDReading where Self: ~Copyable {
    /// Checks every invariant of the store in this one snapshot:
    ///
    /// 1. no ID is allocated twice and every allocated or free-pending ID belongs to exactly one existing set;
    /// 2. each set holds no more than its quota; Σ quotas equals the reserved figure and fits in capacity − 1; ID 0 is never allocated;
    /// 3. the free index and the allocated IDs partition 1 … capacity − 1 exactly (with maximal extents);
    /// 4. guest ↔ host maps are one-to-one within each set and name only IDs of that set;
    /// 5. every stored event decodes, lies within the sequence handed out, and is still wanted by a subscriber;
    /// 6. every free-pending ID is still held back, and the FREE that holds it back is still in the outbox;
    ///
    /// plus the derived records: set counts, owner tokens, pending and hold records, subscriber positions.
    ///
    /// - Parameter progress: called now and then with (IDs checked, IDs in total).
    public func verify(progress: ((Int, Int) -> Void)? = nil) throws -> VerificationReport {
        var log = ViolationLog()
        guard let capacity = try? capacity(), capacity >= 2 else {
            log.add("noCapacity", "the store has no valid capacity record", "meta capacity")
            return VerificationReport(violations: log.list, violationCount: log.count, idsChecked: 0)
        }
        // Sets.
        var sets: [UInt32: SetRecord] = [:]
        try txn.withCursor(on: schema.control) { cursor in
            try cursor.scan(from: [ControlTag.set]) { key, reader in
                guard key.first == ControlTag.set else { return false }
                guard key.count == 5, let id = Key.decodeU32(key, at: 1) else {
                    log.add("malformedKey", "a set key has the wrong length", "control \(key)")
                    return true
                }
                if let record = try? SetRecord(decoding: &reader) {
                    sets[id] = record
                } else {
                    log.add("recordUndecodable", "the record of set \(id) does not decode", "set \(id)")
                }
                return true
            }
        }
        // Free extents, in order.
        var extents: [(UInt32, UInt32)] = []
        try txn.withCursor(on: schema.control) { cursor in
            try cursor.scan(from: [ControlTag.free]) { key, reader in
                guard key.first == ControlTag.free else { return false }
                guard key.count == 5, let first = Key.decodeU32(key, at: 1), let last = try? reader.u32(), reader.remaining == 0,
                    first <= last
                else {
                    log.add("extentMalformed", "a free-index record is malformed", "control \(key)")
                    return true
                }
                extents.append((first, last))
                return true
            }
        }
        let subscribers = try subscriberRecords()
        let lastSequence = try lastSequence()
        var pendingRecords: [UInt32: UInt64] = [:]
        try txn.withCursor(on: schema.pending) { cursor in
            try cursor.scan(from: []) { key, reader in
                if let id = Key.decodeU32(key), key.count == 4, let sequence = try? reader.u64() {
                    pendingRecords[id] = sequence
                } else {
                    log.add("pendingMalformed", "a pending record is malformed", "pending \(key)")
                }
                return true
            }
        }

        // One pass over the IDs: ownership, counts, guests, pending, and the partition with the free index.
        var counts: [UInt32: (count: UInt32, pending: UInt32)] = [:]
        var guestCount = 0
        var pendingIDs: [(UInt32, UInt32)] = []  // (id, set)
        var extentIndex = 0
        var nextUncovered: UInt32 = 1  // every ID below this is accounted for
        let total = try txn.count(of: schema.ids)
        var checked = 0
        func checkGap(upTo end: UInt32) {
            // IDs nextUncovered ..< end are not allocated, so exactly one extent must cover them.
            guard nextUncovered < end else { return }
            if extentIndex < extents.count, extents[extentIndex] == (nextUncovered, end - 1) {
                extentIndex += 1
            } else {
                log.add(
                    "freeIndexGap", "IDs \(nextUncovered)…\(end - 1) are neither allocated nor one free extent",
                    "ids \(nextUncovered)…\(end - 1)"
                )
                while extentIndex < extents.count, extents[extentIndex].1 < end { extentIndex += 1 }
            }
        }
        try txn.withCursor(on: schema.ids) { cursor in
            try cursor.scan(from: []) { key, reader in
                checked += 1
                if checked % 65536 == 0 { progress?(checked, total) }
                guard key.count == 4, let id = Key.decodeU32(key) else {
                    log.add("malformedKey", "an ID key has the wrong length", "ids \(key)")
                    return true
                }
                guard let record = try? IDRecord(decoding: &reader) else {
                    log.add("recordUndecodable", "the record of ID \(id) does not decode", "id \(id)")
                    return true
                }
                if id == 0 { log.add("idZero", "ID 0 is allocated", "id 0") }
                if id >= capacity { log.add("idOutOfRange", "ID \(id) lies at or above capacity \(capacity)", "id \(id)") }
                if id >= 1, id < capacity {
                    checkGap(upTo: id)
                    if extentIndex < extents.count, extents[extentIndex].0 <= id {
                        log.add("freeAndAllocated", "ID \(id) is allocated and in the free index", "id \(id)")
                        while extentIndex < extents.count, extents[extentIndex].1 <= id { extentIndex += 1 }
                    }
                    nextUncovered = id + 1
                }
                if sets[record.set] == nil {
                    log.add("orphanID", "ID \(id) belongs to set \(record.set), which does not exist", "id \(id)", "set \(record.set)")
                }
                var c = counts[record.set] ?? (0, 0)
                c.count += 1
                if record.state == .freePending {
                    c.pending += 1
                    pendingIDs.append((id, record.set))
                    if pendingRecords[id] == nil {
                        log.add("pendingMismatch", "free-pending ID \(id) has no pending record", "id \(id)")
                    }
                } else if pendingRecords[id] != nil {
                    log.add("pendingMismatch", "allocated ID \(id) has a pending record", "id \(id)")
                }
                counts[record.set] = c
                if let guest = record.guest {
                    guestCount += 1
                    let mapped = try txn.get(Key.pair(record.set, guest), in: schema.guests).flatMap { Key.decodeU32($0) }
                    if mapped != id {
                        log.add(
                            "guestMismatch", "ID \(id) has guest \(guest) but set \(record.set) maps it to \(mapped.map(String.init) ?? "nothing")",
                            "id \(id)", "guest \(guest)"
                        )
                    }
                }
                return true
            }
        }
        checkGap(upTo: capacity)
        if extentIndex < extents.count {
            log.add("extentMalformed", "free extents overlap or lie beyond capacity \(capacity)", "extent \(extents[extentIndex].0)")
        }
        progress?(checked, total)
        for id in pendingRecords.keys.sorted() where (try? idRecord(IOASID(id))) == nil {
            log.add("pendingMismatch", "a pending record names ID \(id), which is not allocated", "pending \(id)")
        }

        // Sets: counts, quotas, reservations, tokens.
        var reserved: UInt64 = 0
        for (id, record) in sets.sorted(by: { $0.key < $1.key }) {
            let c = counts[id] ?? (0, 0)
            if c.count != record.count {
                log.add("setCountMismatch", "set \(id) records \(record.count) IDs but holds \(c.count)", "set \(id)")
            }
            if c.pending != record.pending {
                log.add("setPendingMismatch", "set \(id) records \(record.pending) free-pending IDs but has \(c.pending)", "set \(id)")
            }
            if c.count > record.quota {
                log.add("overQuota", "set \(id) holds \(c.count) IDs, over its quota \(record.quota)", "set \(id)")
            }
            if record.flags.contains(.destroyPending), c.count == 0 {
                log.add("destroyPendingEmpty", "set \(id) waits to be destroyed but holds no IDs", "set \(id)")
            }
            reserved += UInt64(record.quota)
            if record.isLive {
                let owner = try txn.get(Array(record.token.utf8), in: schema.tokens).flatMap { Key.decodeU32($0) }
                if owner != id {
                    log.add("tokenMissing", "live set \(id)'s token \"\(record.token)\" does not map to it", "set \(id)")
                }
            }
        }
        if reserved != (try reservedQuota()) {
            log.add("reservedMismatch", "Σ quotas is \(reserved) but the store records \(try reservedQuota())", "meta reserved")
        }
        if reserved > UInt64(capacity) - 1 {
            log.add("overReserved", "Σ quotas \(reserved) exceeds capacity − 1 = \(capacity - 1)", "meta reserved")
        }
        try txn.withCursor(on: schema.tokens) { cursor in
            try cursor.scan(from: []) { key, reader in
                let token = String(decoding: key, as: UTF8.self)
                let set = reader.remaining == 4 ? try? reader.u32() : nil
                if let set, let record = sets[set], record.isLive, record.token == token { return true }
                log.add("tokenDangling", "token \"\(token)\" names no live set with that token", "token \(token)")
                return true
            }
        }

        // Guests: every mapping names an ID of its set carrying that guest.
        var mappings = 0
        try txn.withCursor(on: schema.guests) { cursor in
            try cursor.scan(from: []) { key, reader in
                mappings += 1
                guard key.count == 8, let set = Key.decodeU32(key), let guest = Key.decodeU32(key, at: 4),
                    reader.remaining == 4, let host = try? reader.u32()
                else {
                    log.add("guestMismatch", "a guest mapping is malformed", "guests \(key)")
                    return true
                }
                let record = try? idRecord(IOASID(host))
                if record?.set != set || record?.guest != guest {
                    log.add("guestMismatch", "set \(set) maps guest \(guest) to \(host), which does not carry it", "guest \(guest)", "id \(host)")
                }
                return true
            }
        }
        if mappings != guestCount {
            log.add("guestMismatch", "\(mappings) guest mappings for \(guestCount) IDs with guest IDs", "guests")
        }

        // Holds name existing IDs.
        try txn.withCursor(on: schema.holds) { cursor in
            try cursor.scan(from: []) { key, _ in
                if key.count <= 4 || (try? idRecord(IOASID(Key.decodeU32(key) ?? 0))) == nil {
                    log.add("holdDangling", "a hold names an ID that is not allocated", "hold \(Key.decodeU32(key) ?? 0)")
                }
                return true
            }
        }

        // Subscribers and the outbox.
        for (name, record) in subscribers where record.acknowledgedThrough > lastSequence {
            log.add("ackBeyondLast", "subscriber \(name) acknowledged \(record.acknowledgedThrough) > last event \(lastSequence)", "subscriber \(name)")
        }
        var stored = Set<UInt64>()
        try txn.withCursor(on: schema.events) { cursor in
            try cursor.scan(from: []) { key, reader in
                guard let sequence = Key.decodeU64(key) else {
                    log.add("malformedKey", "an event key has the wrong length", "events \(key)")
                    return true
                }
                stored.insert(sequence)
                guard let event = try? EventCoding.decode(sequence: sequence, &reader) else {
                    log.add("eventUndecodable", "event \(sequence) does not decode", "event \(sequence)")
                    return true
                }
                if sequence > lastSequence {
                    log.add("eventBeyondLast", "event \(sequence) lies beyond the sequence handed out", "event \(sequence)")
                }
                if !subscribers.contains(where: { $0.record.acknowledgedThrough < sequence && $0.record.filter.matches(event.kind, set: event.set) }) {
                    log.add("eventUnwanted", "event \(sequence) is wanted by no subscriber", "event \(sequence)")
                }
                return true
            }
        }
        // Free-pending IDs are held back, and the FREE holding them back is still there.
        for (id, set) in pendingIDs {
            let sequence = pendingRecords[id] ?? 0
            let waiting = subscribers.filter {
                sequence > 0 && $0.record.acknowledgedThrough < sequence && $0.record.filter.matches(.free, set: SetID(set))
            }
            if !waiting.isEmpty, !stored.contains(sequence) {
                log.add("eventLost", "FREE #\(sequence) of ID \(id) is gone but \(waiting[0].name) has not acknowledged it", "id \(id)", "event \(sequence)")
            }
            if waiting.isEmpty, try holders(of: IOASID(id)).isEmpty {
                log.add("pendingStuck", "free-pending ID \(id) is held back by nothing", "id \(id)")
            }
        }
        return VerificationReport(violations: log.list, violationCount: log.count, idsChecked: checked)
    }
}
