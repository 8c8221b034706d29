import IOASIDMigrations
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
    /// How many pages of `data.mdb` the structural check read (0 when it did not run).
    public let pagesChecked: Int
    /// Whether the file's structure is sound: its B-trees and free list, read
    /// page by page (``IOASIDStore/verify(progress:)``). When it is not, the
    /// violations name the damaged pages and the records were not read.
    public let isStructurallySound: Bool
    /// Whether every invariant holds.
    public var isClean: Bool { violationCount == 0 }

    init(violations: [Violation], violationCount: Int, idsChecked: Int, pagesChecked: Int = 0, isStructurallySound: Bool = true) {
        self.violations = violations
        self.violationCount = violationCount
        self.idsChecked = idsChecked
        self.pagesChecked = pagesChecked
        self.isStructurallySound = isStructurallySound
    }
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
    /// 0. every record passes its checksum, decodes, and has a well-formed key;
    /// 1. no ID is allocated twice and every allocated or free-pending ID belongs to exactly one existing set;
    /// 2. each set holds no more than its quota; Σ quotas equals the reserved figure and fits in capacity − 1; ID 0 is never allocated;
    /// 3. the free index and the allocated IDs partition 1 … capacity − 1 exactly (with maximal extents);
    /// 4. guest ↔ host maps are one-to-one within each set and name only IDs of that set;
    /// 5. every stored event lies within the sequence handed out and is still wanted by a subscriber;
    /// 6. every free-pending ID is still held back, and the FREE that holds it back is still in the outbox;
    ///
    /// plus the derived records: set counts, owner tokens, pending and hold
    /// records, subscriber positions, the next set ID.
    ///
    /// - Parameter progress: called now and then with (IDs checked, IDs in total).
    public func verify(progress: ((Int, Int) -> Void)? = nil) throws -> VerificationReport {
        let scan = try scanStore(progress: progress)
        var log = ViolationLog()
        for damage in scan.damage {
            log.add(damage.kind.rawValue, damage.message, "\(damage.database) \(Hex.encode(damage.key))")
        }
        guard let capacity = scan.validCapacity else {
            log.add("noCapacity", "the store has no valid capacity record", "meta capacity")
            return VerificationReport(violations: log.list, violationCount: log.count, idsChecked: scan.occupied.count)
        }
        Self.checkIDs(scan, capacity: capacity, &log)
        Self.checkFreeIndex(scan, capacity: capacity, &log)
        Self.checkSets(scan, capacity: capacity, &log)
        Self.checkGuests(scan, &log)
        Self.checkNotifications(scan, &log)
        return VerificationReport(violations: log.list, violationCount: log.count, idsChecked: scan.occupied.count)
    }

    /// Ownership, range, pending records and guest fields of every ID.
    private static func checkIDs(_ scan: StoreScan, capacity: UInt32, _ log: inout ViolationLog) {
        for record in scan.ids {
            let id = record.id
            if id == 0 { log.add("idZero", "ID 0 is allocated", "id 0") }
            if id >= capacity { log.add("idOutOfRange", "ID \(id) lies at or above capacity \(capacity)", "id \(id)") }
            if scan.sets[record.set] == nil {
                log.add("orphanID", "ID \(id) belongs to set \(record.set), which does not exist", "id \(id)", "set \(record.set)")
            }
            if record.isFreePending, scan.pending[id] == nil {
                log.add("pendingMismatch", "free-pending ID \(id) has no pending record", "id \(id)")
            } else if !record.isFreePending, scan.pending[id] != nil {
                log.add("pendingMismatch", "allocated ID \(id) has a pending record", "id \(id)")
            }
            if let guest = record.guest {
                let mapped = scan.guests[UInt64(record.set) << 32 | UInt64(guest)]
                if mapped != id {
                    log.add(
                        "guestMismatch", "ID \(id) has guest \(guest) but set \(record.set) maps it to \(mapped.map(String.init) ?? "nothing")",
                        "id \(id)", "guest \(guest)"
                    )
                }
            }
        }
        let known = Set(scan.occupied)
        for id in scan.pending.keys.sorted() where !known.contains(id) {
            log.add("pendingMismatch", "a pending record names ID \(id), which is not allocated", "pending \(id)")
        }
    }

    /// The free extents and the IDs partition 1 … capacity − 1, with maximal extents.
    private static func checkFreeIndex(_ scan: StoreScan, capacity: UInt32, _ log: inout ViolationLog) {
        let expected = scan.expectedExtents(capacity: capacity)
        guard scan.extents != expected else { return }
        let actual = Set(scan.extents)
        let wanted = Set(expected)
        for extent in expected where !actual.contains(extent) {
            log.add(
                "freeIndexGap", "IDs \(extent.lowerBound)…\(extent.upperBound) are neither allocated nor one free extent",
                "ids \(extent.lowerBound)…\(extent.upperBound)"
            )
        }
        for extent in scan.extents where !wanted.contains(extent) {
            if let id = firstOccupied(scan.occupied, in: extent) {
                log.add("freeAndAllocated", "ID \(id) is allocated and in the free extent \(extent.lowerBound)…\(extent.upperBound)", "id \(id)")
            } else {
                log.add(
                    "extentMalformed", "the free extent \(extent.lowerBound)…\(extent.upperBound) overlaps another, is not maximal, or lies beyond capacity \(capacity)",
                    "extent \(extent.lowerBound)…\(extent.upperBound)"
                )
            }
        }
    }

    /// The lowest of the sorted `occupied` IDs inside `extent` (binary search).
    private static func firstOccupied(_ occupied: [UInt32], in extent: ClosedRange<UInt32>) -> UInt32? {
        var low = 0, high = occupied.count
        while low < high {
            let mid = (low + high) / 2
            if occupied[mid] < extent.lowerBound { low = mid + 1 } else { high = mid }
        }
        return low < occupied.count && occupied[low] <= extent.upperBound ? occupied[low] : nil
    }

    /// Counts, quotas, reservations, tokens and the next set ID.
    private static func checkSets(_ scan: StoreScan, capacity: UInt32, _ log: inout ViolationLog) {
        var counts: [UInt32: (count: UInt32, pending: UInt32)] = [:]
        for record in scan.ids {
            var c = counts[record.set] ?? (0, 0)
            c.count += 1
            if record.isFreePending { c.pending += 1 }
            counts[record.set] = c
        }
        var reserved: UInt64 = 0
        for (id, record) in scan.sets.sorted(by: { $0.key < $1.key }) {
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
            if record.isLive, scan.tokens[record.token] != id {
                log.add("tokenMissing", "live set \(id)'s token \"\(Names.escaped(record.token))\" does not map to it", "set \(id)")
            }
            if let next = scan.nextSetID, id >= next {
                log.add("nextSetIDBehind", "set \(id) exists but the next set ID is \(next)", "set \(id)", "meta next-set-id")
            }
            reserved += UInt64(record.quota)
        }
        if scan.nextSetID == nil {
            log.add("nextSetIDMissing", "the store has no next-set-id record", "meta next-set-id")
        }
        if reserved != scan.reserved ?? 0 {
            log.add("reservedMismatch", "Σ quotas is \(reserved) but the store records \(scan.reserved ?? 0)", "meta reserved")
        }
        if Self.isOverReserved(capacity: capacity, reserved: reserved) {
            log.add("overReserved", "Σ quotas \(reserved) exceeds capacity − 1 = \(capacity - 1)", "meta reserved")
        }
        for (token, set) in scan.tokens.sorted(by: { $0.key < $1.key }) {
            if let record = scan.sets[set], record.isLive, record.token == token { continue }
            log.add("tokenDangling", "token \"\(Names.escaped(token))\" names no live set with that token", "token \(Names.escaped(token))")
        }
    }

    /// Every guest mapping names an ID of its set that carries that guest ID.
    private static func checkGuests(_ scan: StoreScan, _ log: inout ViolationLog) {
        let byID = Dictionary(scan.ids.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for (key, host) in scan.guests.sorted(by: { $0.key < $1.key }) {
            let set = UInt32(key >> 32), guest = UInt32(truncatingIfNeeded: key)
            let record = byID[host]
            if record?.set != set || record?.guest != guest {
                log.add("guestMismatch", "set \(set) maps guest \(guest) to \(host), which does not carry it", "guest \(guest)", "id \(host)")
            }
        }
        let carried = scan.ids.filter { $0.guest != nil }.count
        if scan.guests.count != carried {
            log.add("guestMismatch", "\(scan.guests.count) guest mappings for \(carried) IDs with guest IDs", "guests")
        }
    }

    /// Holds, subscriber positions, events and free-pending IDs.
    private static func checkNotifications(_ scan: StoreScan, _ log: inout ViolationLog) {
        let known = Set(scan.occupied)
        for hold in scan.holds where !known.contains(hold.id) {
            log.add("holdDangling", "\"\(Names.escaped(hold.holder))\" holds ID \(hold.id), which is not allocated", "hold \(hold.id)")
        }
        let last = scan.lastSequence
        for (name, record) in scan.subscribers where record.acknowledgedThrough > last {
            log.add("ackBeyondLast", "subscriber \(Names.escaped(name)) acknowledged \(record.acknowledgedThrough) > last event \(last)", "subscriber \(Names.escaped(name))")
        }
        var stored = Set<UInt64>()
        for event in scan.events {
            // No event can lie beyond the sequence handed out: the counter is the
            // highest stored event + 1 (the meta record only keeps it after pruning).
            stored.insert(event.sequence)
            if !scan.subscribers.contains(where: { $0.record.acknowledgedThrough < event.sequence && $0.record.takes(kind: event.kind, set: event.set) }) {
                log.add("eventUnwanted", "event \(event.sequence) is wanted by no subscriber", "event \(event.sequence)")
            }
        }
        let held = Set(scan.holds.map(\.id))
        for record in scan.ids where record.isFreePending {
            let sequence = scan.pending[record.id] ?? 0
            let waiting = scan.subscribers.filter { sequence > 0 && waits($0.record, for: sequence, set: SetID(record.set)) }
            if !waiting.isEmpty, !stored.contains(sequence) {
                log.add(
                    "eventLost", "FREE #\(sequence) of ID \(record.id) is gone but \(Names.escaped(waiting[0].name)) has not acknowledged it",
                    "id \(record.id)", "event \(sequence)"
                )
            }
            if waiting.isEmpty, !held.contains(record.id) {
                log.add("pendingStuck", "free-pending ID \(record.id) is held back by nothing", "id \(record.id)")
            }
        }
    }
}
