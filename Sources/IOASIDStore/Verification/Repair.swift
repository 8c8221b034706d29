import LMDB

extension WriteTransaction {
    /// Rebuilds everything derivable from the primary records — the ID records
    /// and set records — in this transaction, and says what it changed:
    /// set counts, the reserved total, the free index, owner tokens, guest
    /// mappings, pending records, dangling holds, unwanted events, subscriber
    /// positions past the last event, and free-pending IDs nothing holds back
    /// (reclaimed). It never drops an ID that has an owner; problems it cannot
    /// fix without dropping data are returned as `unrepairable`.
    public func repair() throws -> RepairReport {
        try operation {
            var changes: [String] = []
            let capacity = try capacity()

            // Primary records: sets and IDs.
            var unrepairable = ViolationLog()
            var sets: [UInt32: SetRecord] = [:]
            var undecodableSets = false
            try txn.withCursor(on: schema.control) { cursor in
                try cursor.scan(from: [ControlTag.set]) { key, reader in
                    guard key.first == ControlTag.set else { return false }
                    if key.count == 5, let id = Key.decodeU32(key, at: 1), let record = try? SetRecord(decoding: &reader) {
                        sets[id] = record
                    } else {
                        undecodableSets = true
                        unrepairable.add("recordUndecodable", "a set record does not decode; quotas and tokens are left as they are", "control \(key)")
                    }
                    return true
                }
            }
            var ids: [(UInt32, IDRecord)] = []
            var occupied: [UInt32] = []  // every ID key, decodable or not: never handed out again by the rebuilt free index
            try txn.withCursor(on: schema.ids) { cursor in
                try cursor.scan(from: []) { key, reader in
                    guard key.count == 4, let id = Key.decodeU32(key) else { return true }
                    occupied.append(id)
                    if let record = try? IDRecord(decoding: &reader) {
                        ids.append((id, record))
                    } else {
                        unrepairable.add("recordUndecodable", "the record of ID \(id) does not decode; the ID stays allocated", "id \(id)")
                    }
                    return true
                }
            }
            for (id, record) in ids where sets[record.set] == nil {
                unrepairable.add("orphanID", "ID \(id) belongs to set \(record.set), which does not exist", "id \(id)")
            }
            for (id, _) in ids where id == 0 || id >= capacity {
                unrepairable.add("idOutOfRange", "ID \(id) lies outside 1…\(capacity - 1); raise the capacity to keep it", "id \(id)")
            }

            // Guest mappings come from the ID records; a guest ID claimed twice in a set keeps its lowest host ID.
            var guests: [UInt64: UInt32] = [:]
            for index in ids.indices {
                let (id, record) = ids[index]
                guard let guest = record.guest else { continue }
                let key = UInt64(record.set) << 32 | UInt64(guest)
                if guests[key] == nil {
                    guests[key] = id
                } else {
                    var fixed = record
                    fixed.guest = nil
                    ids[index].1 = fixed
                    try txn.put(fixed.encoded(), forKey: id, in: schema.ids)
                    changes.append("ID \(id): dropped guest \(guest), already mapped in set \(record.set) (the ID itself is kept)")
                }
            }
            var existingGuests: [UInt64: UInt32] = [:]
            var malformedGuests = false
            try txn.withCursor(on: schema.guests) { cursor in
                try cursor.scan(from: []) { key, reader in
                    if key.count == 8, let set = Key.decodeU32(key), let guest = Key.decodeU32(key, at: 4), reader.remaining == 4 {
                        existingGuests[UInt64(set) << 32 | UInt64(guest)] = try? reader.u32()
                    } else {
                        malformedGuests = true
                    }
                    return true
                }
            }
            if malformedGuests || existingGuests != guests {
                try txn.removeAll(in: schema.guests)
                for (key, host) in guests {
                    try txn.put(Key.u32(host), forKey: Key.pair(UInt32(key >> 32), UInt32(truncatingIfNeeded: key)), in: schema.guests)
                }
                changes.append("rebuilt \(guests.count) guest mappings")
            }

            // Pending records follow the ID states (keeping a recorded FREE sequence).
            var pending: [UInt32: UInt64] = [:]
            try txn.withCursor(on: schema.pending) { cursor in
                try cursor.scan(from: []) { key, reader in
                    if key.count == 4, let id = Key.decodeU32(key), let sequence = try? reader.u64() { pending[id] = sequence }
                    return true
                }
            }
            let pendingIDs = Set(ids.filter { $0.1.state == .freePending }.map(\.0))
            for (id, _) in pending where !pendingIDs.contains(id) {
                try txn.delete(id, in: schema.pending)
                changes.append("removed the pending record of ID \(id), which is not free-pending")
            }
            let missing = Set(pendingIDs.filter { pending[$0] == nil })
            if !missing.isEmpty {
                // The FREE that made an ID free-pending is still in the outbox if anyone waits for it.
                var frees: [UInt32: UInt64] = [:]
                try txn.withCursor(on: schema.events) { cursor in
                    try cursor.scan(from: []) { key, reader in
                        if let sequence = Key.decodeU64(key), let event = try? EventCoding.decode(sequence: sequence, &reader),
                            event.kind == .free, let id = event.id?.rawValue, missing.contains(id)
                        {
                            frees[id] = sequence
                        }
                        return true
                    }
                }
                for id in missing.sorted() {
                    try txn.put(Key.u64(frees[id] ?? 0), forKey: id, in: schema.pending)
                    changes.append("restored the pending record of ID \(id) (FREE #\(frees[id] ?? 0))")
                }
            }

            // Set counts and the reserved total.
            var counts: [UInt32: (UInt32, UInt32)] = [:]
            for (_, record) in ids {
                var c = counts[record.set] ?? (0, 0)
                c.0 += 1
                if record.state == .freePending { c.1 += 1 }
                counts[record.set] = c
            }
            var reserved: UInt64 = 0
            for (id, var record) in sets.sorted(by: { $0.key < $1.key }) {
                let (count, pendingCount) = counts[id] ?? (0, 0)
                if record.count != count || record.pending != pendingCount {
                    changes.append("set \(id): count \(record.count) → \(count), free-pending \(record.pending) → \(pendingCount)")
                    record.count = count
                    record.pending = pendingCount
                    try putSet(record, SetID(id))
                    sets[id] = record
                }
                if count > record.quota {
                    unrepairable.add("overQuota", "set \(id) holds \(count) IDs, over its quota \(record.quota)", "set \(id)")
                }
                reserved += UInt64(record.quota)
            }
            if !undecodableSets, reserved != (try reservedQuota()) {
                changes.append("reserved quota \(try reservedQuota()) → \(reserved)")
                try putReserved(reserved)
            }

            // Owner tokens: one per live set.
            var tokens: [String: UInt32] = [:]
            for (id, record) in sets.sorted(by: { $0.key < $1.key }) where record.isLive {
                if tokens[record.token] == nil {
                    tokens[record.token] = id
                } else {
                    unrepairable.add("duplicateToken", "live sets \(tokens[record.token]!) and \(id) share token \"\(record.token)\"", "set \(id)")
                }
            }
            var existingTokens: [String: UInt32] = [:]
            try txn.withCursor(on: schema.tokens) { cursor in
                try cursor.scan(from: []) { key, reader in
                    existingTokens[String(decoding: key, as: UTF8.self)] = reader.remaining == 4 ? try? reader.u32() : 0
                    return true
                }
            }
            if !undecodableSets, existingTokens != tokens {
                try txn.removeAll(in: schema.tokens)
                for (token, id) in tokens { try txn.put(Key.u32(id), forKey: Array(token.utf8), in: schema.tokens) }
                changes.append("rebuilt \(tokens.count) owner tokens")
            }

            // The free index: the complement of the IDs, as maximal extents.
            var expected: [(UInt32, UInt32)] = []
            var next: UInt32 = 1
            for id in occupied where id >= 1 && id < capacity {
                if id > next { expected.append((next, id - 1)) }
                next = id + 1
            }
            if next < capacity { expected.append((next, capacity - 1)) }
            // Read the extents tolerantly: malformed ones are exactly what may need rebuilding.
            var actual: [(UInt32, UInt32)] = []
            var extentKeys: [[UInt8]] = []
            var malformedExtents = false
            try txn.withCursor(on: schema.control) { cursor in
                try cursor.scan(from: [ControlTag.free]) { key, reader in
                    guard key.first == ControlTag.free else { return false }
                    extentKeys.append(key)
                    if key.count == 5, let first = Key.decodeU32(key, at: 1), reader.remaining == 4, let last = try? reader.u32() {
                        actual.append((first, last))
                    } else {
                        malformedExtents = true
                    }
                    return true
                }
            }
            if malformedExtents || !actual.elementsEqual(expected, by: ==) {
                for key in extentKeys { try txn.delete(key, in: schema.control) }
                for (first, last) in expected { try txn.put(Key.u32(last), forKey: Key.free(first), in: schema.control) }
                changes.append("rebuilt the free index: \(actual.count) → \(expected.count) extents")
            }

            // Holds on IDs that are gone.
            var dangling: [[UInt8]] = []
            try txn.withCursor(on: schema.holds) { cursor in
                try cursor.scan(from: []) { key, _ in
                    let held = key.count > 4 ? try idRecord(IOASID(Key.decodeU32(key) ?? 0)) : nil
                    if held == nil { dangling.append(key) }
                    return true
                }
            }
            for key in dangling { try txn.delete(key, in: schema.holds) }
            if !dangling.isEmpty { changes.append("removed \(dangling.count) holds on IDs that are not allocated") }

            // Subscribers past the last event, then events nobody wants.
            let last = try lastSequence()
            for (name, var record) in try subscriberRecords() where record.acknowledgedThrough > last {
                changes.append("subscriber \(name): acknowledged \(record.acknowledgedThrough) → \(last)")
                record.acknowledgedThrough = last
                try txn.put(record.encoded(), forKey: Array(name.utf8), in: schema.subscribers)
                context.state.subscribers = nil
            }
            let eventsBefore = try txn.count(of: schema.events)
            try pruneEvents(in: 0...max(last, 1))
            let pruned = eventsBefore - (try txn.count(of: schema.events))
            if pruned > 0 { changes.append("deleted \(pruned) events no subscriber wants") }

            // Free-pending IDs nothing holds back go back to the pool; empty destroyed sets go away.
            let owners = Dictionary(ids.map { ($0.0, $0.1.set) }, uniquingKeysWith: { first, _ in first })
            for id in pendingIDs.sorted() where sets[owners[id] ?? 0] != nil {  // orphans are reported, not touched
                if try reclaimIfReleased(IOASID(id)) { changes.append("reclaimed ID \(id), which nothing held back") }
            }
            for (id, record) in sets.sorted(by: { $0.key < $1.key }) where record.flags.contains(.destroyPending) {
                // Reclaiming may already have removed it.
                guard (try? setRecord(SetID(id))) != nil else { continue }
                if try finishDestroyIfEmpty(SetID(id)) { changes.append("destroyed set \(id), which held no IDs") }
            }
            return RepairReport(changes: changes, unrepairable: unrepairable.list)
        }
    }
}

extension IOASIDStore {
    /// Checks every invariant in one read transaction. See ``IOASIDReading/verify(progress:)``.
    public func verify(progress: ((Int, Int) -> Void)? = nil) throws(IOASIDError) -> VerificationReport {
        try readMapped { try $0.verify(progress: progress) }
    }

    /// Rebuilds what is derivable in one write transaction. See ``WriteTransaction/repair()``.
    public func repair() throws(IOASIDError) -> RepairReport {
        try writeMapped { try $0.repair() }
    }
}
