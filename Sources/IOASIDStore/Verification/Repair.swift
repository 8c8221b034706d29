import IOASIDMigrations
import LMDB

extension WriteTransaction {
    /// Rebuilds everything derivable from the primary records — the ID records
    /// and set records — in this transaction, and says what it changed:
    /// set counts, the reserved total, the free index, owner tokens, guest
    /// mappings, pending records, dangling holds, unwanted events, subscriber
    /// positions past the last event, and free-pending IDs nothing holds back
    /// (reclaimed).
    ///
    /// It reads the store with the same tolerant scan as
    /// ``IOASIDReading/verify(progress:)``. It never drops an ID that has an
    /// owner, nor an ID whose record is damaged (such an ID stays out of the
    /// free index); records it cannot rebuild — damaged set, subscriber or
    /// event records, IDs of missing sets — are returned as `unrepairable`, and
    /// what depends on them is left as it is.
    public func repair() throws -> RepairReport {
        try operation {
            var scan = try scanStore()
            var changes: [String] = []
            var unrepairable = ViolationLog()
            // A damaged free extent is not listed: the free index is rebuilt from the ID records.
            for damage in scan.damage where ["control", "subscribers", "events", "meta", "imports"].contains(damage.database) && !damage.isFreeExtent {
                unrepairable.add(damage.kind.rawValue, damage.message + "; left as it is", "\(damage.database) \(Hex.encode(damage.key))")
            }
            for damage in scan.damage where ["ids"].contains(damage.database) {
                unrepairable.add(damage.kind.rawValue, damage.message + "; the ID stays allocated", "ids \(Hex.encode(damage.key))")
            }
            guard let capacity = scan.validCapacity else {
                unrepairable.add("noCapacity", "the store has no valid capacity record; nothing can be rebuilt", "meta capacity")
                return RepairReport(changes: changes, unrepairable: unrepairable.list)
            }
            let setsIntact = !scan.damage.contains { $0.database == "control" && !$0.isFreeExtent }
            for record in scan.ids where scan.sets[record.set] == nil && setsIntact {
                unrepairable.add("orphanID", "ID \(record.id) belongs to set \(record.set), which does not exist", "id \(record.id)")
            }
            for record in scan.ids where record.id == 0 || record.id >= capacity {
                unrepairable.add("idOutOfRange", "ID \(record.id) lies outside 1…\(capacity - 1); raise the capacity to keep it", "id \(record.id)")
            }
            changes += try repairGuests(&scan)
            changes += try repairPending(scan)
            if setsIntact { changes += try repairCounts(scan, capacity: capacity, &unrepairable) }
            changes += try repairFreeIndex(scan, capacity: capacity)
            changes += try repairHolds(scan)
            if !scan.damagedDatabases.contains("subscribers") && !scan.damagedDatabases.contains("events") {
                changes += try repairOutbox(scan)
            }
            if setsIntact && !scan.damagedDatabases.contains("subscribers") && !scan.damagedDatabases.contains("events") {
                changes += try reclaimReleased(scan)
            }
            return RepairReport(changes: changes, unrepairable: unrepairable.list)
        }
    }

    /// Guest mappings come from the ID records; a guest ID claimed twice in a set keeps its lowest host ID.
    private func repairGuests(_ scan: inout StoreScan) throws -> [String] {
        var changes: [String] = []
        var wanted: [UInt64: UInt32] = [:]
        for index in scan.ids.indices {
            let record = scan.ids[index]
            guard let guest = record.guest else { continue }
            let key = UInt64(record.set) << 32 | UInt64(guest)
            if wanted[key] == nil {
                wanted[key] = record.id
                continue
            }
            guard var full = try idRecord(IOASID(record.id)) else { continue }
            full.guest = nil
            try putID(full, IOASID(record.id))
            scan.ids[index] = StoreScan.ScannedID(id: record.id, set: record.set, isFreePending: record.isFreePending, guest: nil)
            changes.append("ID \(record.id): dropped guest \(guest), already mapped in set \(record.set) (the ID itself is kept)")
        }
        if wanted != scan.guests || scan.damagedDatabases.contains("guests") {
            try txn.removeAll(in: schema.guests)
            for (key, host) in wanted.sorted(by: { $0.key < $1.key }) {
                try putGuestMapping(UInt32(truncatingIfNeeded: key), in: UInt32(key >> 32), to: host)
            }
            changes.append("rebuilt \(wanted.count) guest mappings")
        }
        return changes
    }

    /// Pending records follow the ID states, keeping a recorded FREE sequence.
    private func repairPending(_ scan: StoreScan) throws -> [String] {
        var changes: [String] = []
        let pendingIDs = Set(scan.ids.filter(\.isFreePending).map(\.id))
        if scan.damagedDatabases.contains("pending") {
            try txn.removeAll(in: schema.pending)
            changes.append("dropped the pending records (some were damaged)")
        } else {
            for id in scan.pending.keys.sorted() where !pendingIDs.contains(id) {
                try remove(StoreLayout.idKey(id), in: schema.pending)
                changes.append("removed the pending record of ID \(id), which is not free-pending")
            }
        }
        let present = scan.damagedDatabases.contains("pending") ? [:] : scan.pending
        // The FREE that made an ID free-pending is still in the outbox if anyone waits for it.
        var frees: [UInt32: UInt64] = [:]
        for event in scan.events where event.kind == Event.Kind.free.code {
            if let id = event.id { frees[id] = event.sequence }
        }
        for id in pendingIDs.sorted() where present[id] == nil {
            try put(ByteWriter.u64(frees[id] ?? 0), StoreLayout.idKey(id), in: schema.pending)
            changes.append("restored the pending record of ID \(id) (FREE #\(frees[id] ?? 0))")
        }
        return changes
    }

    /// Set counts, the reserved total and the owner tokens, from the ID and set records.
    private func repairCounts(_ scan: StoreScan, capacity: UInt32, _ unrepairable: inout ViolationLog) throws -> [String] {
        var changes: [String] = []
        var counts: [UInt32: (UInt32, UInt32)] = [:]
        for record in scan.ids {
            var c = counts[record.set] ?? (0, 0)
            c.0 += 1
            if record.isFreePending { c.1 += 1 }
            counts[record.set] = c
        }
        var reserved: UInt64 = 0
        var tokens: [String: UInt32] = [:]
        for (id, var record) in scan.sets.sorted(by: { $0.key < $1.key }) {
            let (count, pending) = counts[id] ?? (0, 0)
            if record.count != count || record.pending != pending {
                changes.append("set \(id): count \(record.count) → \(count), free-pending \(record.pending) → \(pending)")
                record.count = count
                record.pending = pending
                putSet(record, SetID(id))
            }
            if count > record.quota {
                unrepairable.add("overQuota", "set \(id) holds \(count) IDs, over its quota \(record.quota)", "set \(id)")
            }
            reserved += UInt64(record.quota)
            guard record.isLive else { continue }
            if let other = tokens[record.token] {
                unrepairable.add("duplicateToken", "live sets \(other) and \(id) share token \"\(Names.escaped(record.token))\"", "set \(id)")
            } else {
                tokens[record.token] = id
            }
        }
        if reserved != scan.reserved {
            changes.append("reserved quota \(scan.reserved.map(String.init) ?? "missing") → \(reserved)")
            try putReserved(reserved)
        }
        // Which set's quota to cut is the operator's call, not repair's.
        if Self.isOverReserved(capacity: capacity, reserved: reserved) {
            unrepairable.add("overReserved", "Σ quotas \(reserved) exceeds capacity − 1 = \(capacity - 1); lower a set's quota or raise the capacity", "meta reserved")
        }
        if tokens != scan.tokens || scan.damagedDatabases.contains("tokens") {
            try txn.removeAll(in: schema.tokens)
            for (token, id) in tokens.sorted(by: { $0.key < $1.key }) {
                try put(ByteWriter.u32(id), StoreLayout.tokenKey(token), in: schema.tokens)
            }
            changes.append("rebuilt \(tokens.count) owner tokens")
        }
        let highest = scan.sets.keys.max() ?? SetID.system.rawValue
        if scan.nextSetID.map({ $0 <= highest }) ?? true, highest < .max {
            try putMeta(StoreLayout.MetaKey.nextSetID, u32: highest + 1)
            changes.append("next set ID \(scan.nextSetID.map(String.init) ?? "missing") → \(highest + 1)")
        }
        return changes
    }

    /// The free index: the complement of every ID key (decodable or not), as maximal extents.
    private func repairFreeIndex(_ scan: StoreScan, capacity: UInt32) throws -> [String] {
        let expected = scan.expectedExtents(capacity: capacity)
        let damagedExtents = scan.damage.contains(where: \.isFreeExtent)
        guard damagedExtents || scan.extents != expected else { return [] }
        try flushDeferredWrites()
        var keys: [[UInt8]] = []
        try txn.withCursor(on: schema.control) { cursor in
            try cursor.forEach(from: [StoreLayout.ControlTag.free]) { entry in
                guard entry.keyByte(at: 0) == StoreLayout.ControlTag.free else { return false }
                keys.append(entry.keyBytes())
                return true
            }
        }
        for key in keys { try remove(key, in: schema.control) }
        for extent in expected {
            try put(ByteWriter.u32(extent.lowerBound), StoreLayout.extentKey(last: extent.upperBound), in: schema.control)
        }
        return ["rebuilt the free index: \(scan.extents.count) → \(expected.count) extents"]
    }

    /// Holds on IDs that are gone, and hold records that are damaged.
    private func repairHolds(_ scan: StoreScan) throws -> [String] {
        let known = Set(scan.occupied)
        var dangling = scan.holds.filter { !known.contains($0.id) }.map(\.key)
        dangling += scan.damage.filter { $0.database == "holds" }.map(\.key)
        for key in dangling { try remove(key, in: schema.holds) }
        return dangling.isEmpty ? [] : ["removed \(dangling.count) holds on IDs that are not allocated, or damaged"]
    }

    /// Subscriber positions past the last event, then events nobody wants.
    private func repairOutbox(_ scan: StoreScan) throws -> [String] {
        var changes: [String] = []
        let last = scan.lastSequence
        for (name, var record) in scan.subscribers where record.acknowledgedThrough > last {
            changes.append("subscriber \(Names.escaped(name)): acknowledged \(record.acknowledgedThrough) → \(last)")
            record.acknowledgedThrough = last
            try putSubscriber(record, name)
        }
        let before = scan.events.count
        try pruneEvents(in: 0...max(last, 1))
        let pruned = before - (try txn.count(of: schema.events))
        if pruned > 0 { changes.append("deleted \(pruned) events no subscriber wants") }
        return changes
    }

    /// Free-pending IDs nothing holds back go back to the pool; empty destroyed sets go away.
    private func reclaimReleased(_ scan: StoreScan) throws -> [String] {
        var changes: [String] = []
        for record in scan.ids where record.isFreePending && scan.sets[record.set] != nil {  // orphans are reported, not touched
            if try reclaimIfReleased(IOASID(record.id)) { changes.append("reclaimed ID \(record.id), which nothing held back") }
        }
        for (id, record) in scan.sets.sorted(by: { $0.key < $1.key }) where record.flags.contains(.destroyPending) {
            // Reclaiming may already have removed it.
            guard (try? setRecord(SetID(id))) != nil else { continue }
            if try finishDestroyIfEmpty(SetID(id)) { changes.append("destroyed set \(id), which held no IDs") }
        }
        return changes
    }
}

extension IOASIDStore {
    /// Checks the store: first the structure of `data.mdb` — every B-tree and
    /// the free list read page by page with plain reads, never through the
    /// map (`PageWalker` of the `LMDB` module) — and, only when that is sound, every record and
    /// invariant in one read transaction (``IOASIDReading/verify(progress:)``).
    /// The read transaction is held during the page walk, so the pages it reads
    /// are not reused by concurrent commits.
    public func verify(progress: ((Int, Int) -> Void)? = nil) throws(IOASIDError) -> VerificationReport {
        let path = path
        return try readMapped { tx in
            let walk = try Self.walkPages(path)
            guard walk.isClean else { return Self.structuralReport(walk) }
            let report = try tx.verify(progress: progress)
            return VerificationReport(
                violations: report.violations, violationCount: report.violationCount, idsChecked: report.idsChecked,
                pagesChecked: walk.pagesRead, isStructurallySound: true
            )
        }
    }

    /// Rebuilds what is derivable in one write transaction. See ``WriteTransaction/repair()``.
    ///
    /// Refuses a store whose file is structurally damaged: rebuilding records
    /// cannot mend pages.
    public func repair() throws(IOASIDError) -> RepairReport {
        let path = path
        return try writeMapped { tx in
            let walk = try Self.walkPages(path)
            if let first = walk.problems.first, !walk.isClean {
                throw IOASIDError(
                    .corruptStore,
                    "\(path)/data.mdb is structurally damaged (\(walk.problems.count + walk.omittedProblems) problems; first: \(first.message)); repair rebuilds records, not pages"
                )
            }
            return try tx.repair()
        }
    }

    private static func walkPages(_ path: String) throws(IOASIDError) -> PageWalkReport {
        do { return try PageWalker.check(directory: path) } catch {
            throw IOASIDError(error.isDamage ? .corruptStore : .storageFailure, error.message, cause: error)
        }
    }

    private static func structuralReport(_ walk: PageWalkReport) -> VerificationReport {
        var log = ViolationLog()
        for problem in walk.problems {
            let page = problem.page.map { "page \($0)" } ?? "file"
            log.add("pageDamaged", "\(problem.kind): \(problem.message)", page, "database \(problem.database)")
        }
        for _ in 0..<walk.omittedProblems { log.add("pageDamaged", "further damage", "file") }
        return VerificationReport(
            violations: log.list, violationCount: max(log.count, 1), idsChecked: 0, pagesChecked: walk.pagesRead, isStructurallySound: false
        )
    }
}
