import Foundation
import IOASIDMigrations
import IOASIDStore
import LMDB
import IOASIDTestSupport
import Testing

@Suite("Fault injection", .serialized)
struct FaultInjectionTests {
    @Test(
        "Every fault point, failing once and failing always, gives a typed error, changes nothing, and the store works after",
        arguments: FaultPoint.allCases, [Int32(28), Int32(5)]
    )
    func faults(point: FaultPoint, code: Int32) throws {
        for always in [false, true] {
            let dir = try TemporaryDirectory()
            defer { dir.cleanup() }
            let path = dir.child("store")
            let store = try IOASIDStore(path: path)
            let vm = try store.createSet(token: "vm", quota: 10)
            let id = try store.allocate(in: vm, guest: 1)
            let before = try store.rawDump()
            let armed = FaultSwitch()
            FaultInjection.install(at: path) { p in
                guard p == point else { return nil }
                return armed.fire(once: !always) ? code : nil
            }
            defer { FaultInjection.install(at: path, nil) }
            // Freeing a bound ID with no subscriber reclaims it at once: it begins a write,
            // deletes (the ID, its guest mapping) and puts (extents, the set), then commits.
            do {
                try store.free(id, in: vm)
                Issue.record("\(point) failing \(always ? "always" : "once") did not fail the free")
            } catch {
                #expect(error.code == .storageFailure, "\(error)")
                #expect((error.cause as? LMDBError)?.code == code)
            }
            #expect(try store.rawDump() == before, "\(point): a failed commit changed the store")
            if always { armed.disarm() }
            // The next operation works.
            #expect(try store.free(id, in: vm))
            #expect(try store.verify().isClean)
        }
    }

    @Test("A full map grows and the operation is retried transparently")
    func mapGrowth() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        var options = IOASIDStore.Options()
        options.mapSize = 256 * 1024
        let store = try IOASIDStore(path: dir.child("store"), options: options)
        let vm = try store.createSet(token: "vm", quota: 20_000)
        try store.write { tx in
            for _ in 0..<10_000 { _ = try tx.allocate(in: vm, data: [UInt8](repeating: 1, count: 64)) }
        }
        #expect(try store.set(vm).allocated == 10_000)
        #expect(try store.verify().isClean)
    }

    @Test("At the maximum map size the operation fails with storageFailure and changes nothing")
    func mapLimit() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        var options = IOASIDStore.Options()
        options.mapSize = 256 * 1024
        options.maxMapSize = 512 * 1024
        let store = try IOASIDStore(path: dir.child("store"), options: options)
        let vm = try store.createSet(token: "vm", quota: 20_000)
        try expectStoreRefusal(.storageFailure, in: store) {
            try store.write { tx in
                for _ in 0..<10_000 { _ = try tx.allocate(in: vm, data: [UInt8](repeating: 1, count: 64)) }
            }
        }
        _ = try store.allocate(in: vm)
    }
}

@Suite("Verify and repair")
struct VerifyRepairTests {
    /// A store with sets, guests, holds, a subscriber and free-pending IDs.
    static func populated(_ dir: TemporaryDirectory) throws -> (IOASIDStore, String) {
        let path = dir.child("store")
        var options = IOASIDStore.Options()
        options.capacity = 1000
        options.systemQuota = 100
        let store = try IOASIDStore(path: path, options: options)
        try store.subscribe("kvm")
        let vm = try store.createSet(token: "vm:a", quota: 100)
        for g: UInt32 in 1...20 { _ = try store.allocate(in: vm, guest: g) }
        try store.retain(3, in: vm, holder: "vfio")
        try store.free(3, in: vm)
        try store.free(5, in: vm)
        _ = try store.allocate(in: .system, range: 500...600)
        return (store, path)
    }

    @Test("A healthy store verifies clean and repair changes nothing")
    func clean() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, _) = try Self.populated(dir)
        #expect(try store.verify().isClean)
        let before = try store.rawDump()
        let report = try store.repair()
        #expect(report.changes == [])
        #expect(try store.rawDump() == before)
    }

    @Test("Broken derived records are reported with their codes and rebuilt by repair", arguments: [
        "freeIndexGap", "freeAndAllocated", "setCountMismatch", "reservedMismatch", "tokenMissing",
        "guestMismatch", "holdDangling", "pendingMismatch", "eventUnwanted",
    ])
    func breakAndRepair(code: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, path) = try Self.populated(dir)
        let env = try Environment.open(path: path)
        func db(_ name: StoreLayout.DB) throws -> Database { try env.openDatabase(named: name.rawValue) }
        let control = try db(.control)
        // Each change is a well-sealed record that breaks a rule (a damaged seal is a test of its own).
        try env.write { txn in
            switch code {
            case "freeIndexGap":  // lose the extent 21…499 (IDs 1…20 and 500 are allocated)
                _ = try txn.delete(StoreLayout.extentKey(last: 499), in: control)
            case "freeAndAllocated":  // claim ID 7 is free as well
                try txn.put(sealed: ByteWriter.u32(7), forKey: StoreLayout.extentKey(last: 7), in: control)
            case "setCountMismatch":  // set 2 says it holds 99 IDs
                var record = try #require(try txn.withSealedValue(forKey: StoreLayout.setKey(2), in: control) { try SetRecord(decoding: &$0) })
                record.count = 99
                try txn.put(sealed: record.encoded(), forKey: StoreLayout.setKey(2), in: control)
            case "reservedMismatch":
                try txn.put(sealed: ByteWriter.u64(1), forKey: StoreLayout.MetaKey.reserved, in: try db(.meta))
            case "tokenMissing":
                _ = try txn.delete(StoreLayout.tokenKey("vm:a"), in: try db(.tokens))
            case "guestMismatch":
                _ = try txn.delete(StoreLayout.guestKey(set: 2, guest: 9), in: try db(.guests))
            case "holdDangling":
                try txn.put(sealed: [], forKey: StoreLayout.holdKey(id: 900, holder: "ghost"), in: try db(.holds))
            case "pendingMismatch":
                _ = try txn.delete(StoreLayout.idKey(5), in: try db(.pending))
            default:  // an event nobody wants: a copy of event 1 under sequence 0
                let events = try db(.events)
                let payload = try #require(try txn.withSealedValue(forKey: StoreLayout.sequenceKey(1), in: events) { try $0.bytes($0.remaining) })
                try txn.put(sealed: payload, forKey: StoreLayout.sequenceKey(0), in: events)
            }
        }
        let report = try store.verify()
        #expect(report.violations.map(\.code).contains(code), "\(report.violations)")
        let repaired = try store.repair()
        #expect(!repaired.changes.isEmpty)
        #expect(repaired.unrepairable == [])
        let after = try store.verify()
        #expect(after.isClean, "\(after.violations)")
        #expect(try store.set(2).allocated == 20, "repair never drops an ID with an owner")
    }

    @Test("Rule violations that only verify can see are each reported with their code", arguments: [
        "orphanID", "overQuota", "setPendingMismatch", "destroyPendingEmpty", "nextSetIDMissing", "nextSetIDBehind",
        "overReserved", "tokenDangling", "ackBeyondLast",
    ])
    func ruleViolations(code: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, path) = try Self.populated(dir)
        let empty = try store.createSet(token: "vm:empty", quota: 1)
        let env = try Environment.open(path: path)
        func db(_ name: StoreLayout.DB) throws -> Database { try env.openDatabase(named: name.rawValue) }
        let control = try db(.control), meta = try db(.meta)
        try env.write { txn in
            switch code {
            case "orphanID":  // ID 800 owned by a set that does not exist
                try txn.put(sealed: IDRecord(set: 77).encoded(), forKey: StoreLayout.idKey(800), in: try db(.ids))
            case "overQuota": try Self.editSet(txn, control, 2) { $0.quota = 5 }
            case "setPendingMismatch": try Self.editSet(txn, control, 2) { $0.pending = 7 }
            case "destroyPendingEmpty": try Self.editSet(txn, control, empty.rawValue) { $0.flags.insert(.destroyPending) }
            case "nextSetIDMissing": _ = try txn.delete(StoreLayout.MetaKey.nextSetID, in: meta)
            case "nextSetIDBehind": try txn.put(sealed: ByteWriter.u32(2), forKey: StoreLayout.MetaKey.nextSetID, in: meta)
            case "overReserved": try Self.editSet(txn, control, 2) { $0.quota = 5000 }
            case "tokenDangling": try txn.put(sealed: ByteWriter.u32(2), forKey: StoreLayout.tokenKey("vm:ghost"), in: try db(.tokens))
            default:  // subscriber kvm acknowledged far beyond the last event
                let subscribers = try db(.subscribers)
                var record = try #require(try txn.withSealedValue(forKey: StoreLayout.subscriberKey("kvm"), in: subscribers) { try SubscriberRecord(decoding: &$0) })
                record.acknowledgedThrough = 1 << 40
                try txn.put(sealed: record.encoded(), forKey: StoreLayout.subscriberKey("kvm"), in: subscribers)
            }
        }
        let report = try store.verify()
        #expect(report.violations.map(\.code).contains(code), "\(report.violations)")
        // Repair fixes what follows from other records and names what it cannot decide; nothing is left unsaid.
        let repaired = try store.repair()
        let after = try store.verify()
        let decisions: Set<String> = ["orphanID", "overQuota", "overReserved"]
        if decisions.contains(code) {
            #expect(repaired.unrepairable.map(\.code).contains(code), "\(repaired)")
            #expect(after.violations.map(\.code) == [code], "\(after.violations)")
        } else {
            #expect(repaired.unrepairable.isEmpty && !repaired.changes.isEmpty, "\(repaired)")
            #expect(after.isClean, "\(after.violations)")
        }
    }

    /// What a damage case expects: the code verify reports, and either what repair changes
    /// (then verify is clean after it) or what repair says it cannot decide.
    struct Combination: Sendable, CustomTestStringConvertible {
        let name: String
        let verifyCode: String
        let unrepairable: String?
        let change: String?
        var testDescription: String { name }
    }

    @Test("Damage combinations: repair rebuilds what follows from the ID and set records and names what it cannot decide", arguments: [
        Combination(name: "guestTwice", verifyCode: "guestMismatch", unrepairable: nil, change: "dropped guest 9"),
        Combination(name: "pendingDamaged", verifyCode: "recordDamaged", unrepairable: nil, change: "dropped the pending records"),
        Combination(name: "pendingStray", verifyCode: "pendingMismatch", unrepairable: nil, change: "removed the pending record of ID 7"),
        Combination(name: "extentDamaged", verifyCode: "recordDamaged", unrepairable: nil, change: "rebuilt the free index"),
        Combination(name: "extentInverted", verifyCode: "recordUndecodable", unrepairable: nil, change: "rebuilt the free index"),
        Combination(name: "holdDamaged", verifyCode: "recordDamaged", unrepairable: nil, change: "removed 1 holds"),
        Combination(name: "reservedMissing", verifyCode: "reservedMismatch", unrepairable: nil, change: "reserved quota missing → 201"),
        Combination(name: "duplicateToken", verifyCode: "tokenMissing", unrepairable: "duplicateToken", change: nil),
        Combination(name: "idZero", verifyCode: "idZero", unrepairable: "idOutOfRange", change: nil),
        Combination(name: "noCapacity", verifyCode: "noCapacity", unrepairable: "noCapacity", change: nil),
        Combination(name: "capacityZero", verifyCode: "noCapacity", unrepairable: "noCapacity", change: nil),
    ])
    func repairCombinations(_ combination: Combination) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, path) = try Self.populated(dir)
        let other = try store.createSet(token: "vm:b", quota: 1)
        let env = try Environment.open(path: path)
        func db(_ name: StoreLayout.DB) throws -> Database { try env.openDatabase(named: name.rawValue) }
        let control = try db(.control), meta = try db(.meta), ids = try db(.ids)
        /// Flips a bit of a stored value without resealing it.
        func damage(_ txn: borrowing Transaction, _ key: [UInt8], in database: Database) throws {
            var value = try #require(try txn.get(key, in: database))
            value[value.count - 1] ^= 0x01
            try txn.put(value, forKey: key, in: database)
        }
        try env.write { txn in
            switch combination.name {
            case "guestTwice":  // ID 7 claims guest 9, which ID 9 holds
                var record = try #require(try txn.withSealedValue(forKey: StoreLayout.idKey(7), in: ids) { try IDRecord(decoding: &$0) })
                record.guest = 9
                try txn.put(sealed: record.encoded(), forKey: StoreLayout.idKey(7), in: ids)
            case "pendingDamaged": try damage(txn, StoreLayout.idKey(5), in: try db(.pending))
            case "pendingStray": try txn.put(sealed: ByteWriter.u64(0), forKey: StoreLayout.idKey(7), in: try db(.pending))
            case "extentDamaged": try damage(txn, StoreLayout.extentKey(last: 499), in: control)
            case "extentInverted":  // an extent 460…450
                try txn.put(sealed: ByteWriter.u32(460), forKey: StoreLayout.extentKey(last: 450), in: control)
            case "holdDamaged": try damage(txn, StoreLayout.holdKey(id: 3, holder: "vfio"), in: try db(.holds))
            case "reservedMissing": _ = try txn.delete(StoreLayout.MetaKey.reserved, in: meta)
            case "duplicateToken": try Self.editSet(txn, control, other.rawValue) { $0.token = "vm:a" }
            case "idZero": try txn.put(sealed: IDRecord(set: 2).encoded(), forKey: StoreLayout.idKey(0), in: ids)
            case "capacityZero": try txn.put(sealed: ByteWriter.u32(0), forKey: StoreLayout.MetaKey.capacity, in: meta)  // well sealed, impossible
            default: _ = try txn.delete(StoreLayout.MetaKey.capacity, in: meta)
            }
        }
        let report = try store.verify()
        #expect(report.violations.map(\.code).contains(combination.verifyCode), "\(report.violations)")
        let repaired = try store.repair()
        let after = try store.verify()
        if let code = combination.unrepairable {
            #expect(repaired.unrepairable.map(\.code).contains(code), "\(repaired)")
            #expect(!after.isClean, "what repair cannot decide is still reported")
        } else {
            #expect(repaired.unrepairable.isEmpty, "\(repaired)")
            #expect(repaired.changes.contains { $0.contains(combination.change ?? "") }, "\(repaired.changes)")
            #expect(after.isClean, "\(after.violations)")
            #expect(try store.set(2).allocated == 20, "repair never drops an ID with an owner")
        }
        if combination.name == "guestTwice" {  // the lowest host ID keeps the guest
            #expect(try store.hostID(forGuest: 9, in: 2) == 7)
            #expect(try store.find(9).guest == nil)
        }
        if ["noCapacity", "capacityZero"].contains(combination.name) {
            #expect(repaired.changes.isEmpty, "nothing is rebuilt without a capacity")
        }
    }

    @Test("A structurally damaged file: verify lists its page damage, repair refuses (corruptStore) and writes nothing")
    func structuralDamage() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let source = try DamageTests.makeStore(in: dir)
        let pages = Int(try FileSystem.status(source + "/data.mdb")?.size ?? 0) / 4096
        // Find a swap of two pages after which the store still opens for writing but its
        // trees are damaged (the walk sees it, LMDB's open does not).
        var checked = false
        search: for a in 2..<min(pages, 30) {
            for b in (a + 1)..<min(pages, 30) {
                let path = dir.child("swap-\(a)-\(b)")
                try DamageTests.copy(source, to: path, swapping: a, b)
                guard let store = try? IOASIDStore(path: path) else { continue }
                let report = try store.verify()
                guard !report.isStructurallySound else { continue }
                #expect(!report.violations.isEmpty && report.violations.allSatisfy { $0.code == "pageDamaged" }, "\(report.violations)")
                #expect(report.idsChecked == 0, "records are not read from a damaged file")
                let before = try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb"))
                expectError(.corruptStore) { try store.repair() }
                let refusal = Result { () throws(IOASIDError) in try store.repair() }
                if case .failure(let error) = refusal {
                    #expect(error.message.contains("structurally damaged") && error.message.contains("repair rebuilds records, not pages"), "\(error.message)")
                }
                #expect(try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb")) == before, "the refused repair wrote")
                checked = true
                break search
            }
        }
        #expect(checked, "no swap left a store that opens but walks damaged")
    }

    /// Rewrites set `id`'s record (well sealed) with `change` applied.
    private static func editSet(_ txn: borrowing Transaction, _ control: Database, _ id: UInt32, _ change: (inout SetRecord) -> Void) throws {
        var record = try #require(try txn.withSealedValue(forKey: StoreLayout.setKey(id), in: control) { try SetRecord(decoding: &$0) })
        change(&record)
        try txn.put(sealed: record.encoded(), forKey: StoreLayout.setKey(id), in: control)
    }

    @Test("The decoded dump shows every record, and says which are shorter than a seal, fail it, or do not decode")
    func dumpProblems() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, path) = try Self.populated(dir)
        try store.subscribe("filtered", filter: EventFilter(sets: [1, 2], kinds: [.alloc, .free]))
        try store.setCapacity(2000)  // a CAPACITY event
        try store.write { tx in try tx.freeze(2) }
        let env = try Environment.open(path: path)
        let ids = try env.openDatabase(named: StoreLayout.DB.ids.rawValue)
        try env.write { txn in
            try txn.put([1, 2], forKey: StoreLayout.idKey(900), in: ids)  // shorter than a seal
            var value = try #require(try txn.get(StoreLayout.idKey(7), in: ids))
            value[0] ^= 0x01
            try txn.put(value, forKey: StoreLayout.idKey(7), in: ids)  // fails its seal
            try txn.put(sealed: [9, 9, 9], forKey: StoreLayout.idKey(901), in: ids)  // sealed, but not an ID record
        }
        var problems: [String: String] = [:]
        var decoded = 0
        var kinds: DumpRecord.Value?, sets: DumpRecord.Value?, flags: DumpRecord.Value?, capacity: DumpRecord.Value?
        try store.dump { record in
            if let problem = record.problem, record.database == "ids" { problems[record.key] = problem }
            if record.problem == nil, !record.fields.isEmpty { decoded += 1 }
            if record.database == "subscribers", record.key == "filtered" {
                kinds = record.fields.first { $0.name == "kinds" }?.value
                sets = record.fields.first { $0.name == "sets" }?.value
            }
            if record.database == "control", record.key == "set 2" { flags = record.fields.first { $0.name == "flags" }?.value }
            if record.database == "events", let value = record.fields.first(where: { $0.name == "capacity" })?.value { capacity = value }
        }
        #expect(kinds == .text("ALLOC,FREE"), "\(String(describing: kinds))")
        #expect(sets == .numbers([1, 2]), "\(String(describing: sets))")
        #expect(flags == .text("frozen"), "\(String(describing: flags))")
        #expect(capacity == .number(2000), "\(String(describing: capacity))")
        #expect(problems == ["900": "shorter than its seal", "7": "checksum mismatch", "901": "does not decode"], "\(problems)")
        #expect(decoded > 20)
    }

    @Test("A record under a key its database cannot hold is reported as malformedKey naming the database", arguments: [
        ("control", [0x01, 0, 0] as [UInt8]), ("control", [0x02, 0]), ("control", [0x7F, 1, 2, 3, 4]), ("ids", [0, 0, 1]),
        ("tokens", [0xFF, 0xFE]), ("guests", [0, 0, 0, 2]), ("pending", [1, 2]), ("holds", [0, 0, 0, 1]),
        ("subscribers", [0xFF]), ("events", [1, 2, 3]), ("imports", [1, 2, 3]),
    ])
    func malformedKeys(database: String, key: [UInt8]) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, path) = try Self.populated(dir)
        let env = try Environment.open(path: path)
        let target = try env.openDatabase(named: database)
        try env.write { txn in try txn.put(sealed: [], forKey: key, in: target) }
        let report = try store.verify()
        let found = report.violations.filter { $0.code == "malformedKey" }
        #expect(found.contains { $0.message.contains(database) }, "\(report.violations)")
        // The dump shows such a key as hex (names are shown as text, escaped).
        var shown: String?
        try store.dump { record in if record.database == database, record.rawKey == key { shown = record.key } }
        let asText = ["tokens", "subscribers"].contains(database)
        #expect(shown == (asText ? Names.escaped(String(decoding: key, as: UTF8.self)) : Hex.encode(key)), "\(String(describing: shown))")
    }

    @Test("A read that walks a damaged database stops with corruptStore naming it, and changes nothing", arguments: [
        "subscriberKey", "subscriberRecord", "eventKey", "eventSeal", "eventRecord", "setKey", "setRecord",
        "extentKey", "extentSeal", "extentInverted", "extentOverlap",
    ])
    func damagedWalks(damage: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, path) = try Self.populated(dir)
        let env = try Environment.open(path: path)
        func db(_ name: StoreLayout.DB) throws -> Database { try env.openDatabase(named: name.rawValue) }
        let subscribers = try db(.subscribers), events = try db(.events), control = try db(.control)
        try env.write { txn in
            switch damage {
            case "subscriberKey": try txn.put(sealed: [], forKey: [0xFF], in: subscribers)
            case "subscriberRecord": try txn.put(sealed: [9, 9, 9], forKey: StoreLayout.subscriberKey("zz"), in: subscribers)
            case "eventKey": try txn.put(sealed: [], forKey: [1, 2, 3], in: events)  // sorts after every sequence
            case "eventSeal":
                var value = try #require(try txn.get(StoreLayout.sequenceKey(1), in: events))
                value[value.count - 1] ^= 0x01
                try txn.put(value, forKey: StoreLayout.sequenceKey(1), in: events)
            case "eventRecord": try txn.put(sealed: [9, 9, 9], forKey: StoreLayout.sequenceKey(1), in: events)
            case "setKey": try txn.put(sealed: [], forKey: [0x01, 0, 0], in: control)
            case "setRecord": try txn.put(sealed: [9], forKey: StoreLayout.setKey(50), in: control)
            // The free index, as allocation and free walk it (IDs 1…20 and 500 are allocated).
            case "extentKey": try txn.put(sealed: ByteWriter.u32(25), forKey: [0x02, 0, 0, 0, 30, 0], in: control)
            case "extentSeal":
                var value = try #require(try txn.get(StoreLayout.extentKey(last: 499), in: control))
                value[value.count - 1] ^= 0x01
                try txn.put(value, forKey: StoreLayout.extentKey(last: 499), in: control)
            case "extentInverted": try txn.put(sealed: ByteWriter.u32(460), forKey: StoreLayout.extentKey(last: 450), in: control)
            default: try txn.put(sealed: ByteWriter.u32(7), forKey: StoreLayout.extentKey(last: 7), in: control)  // ID 7 is allocated
            }
        }
        if damage == "extentOverlap" { try store.unsubscribe("kvm") }  // so that freeing 7 returns it to the index
        let before = try store.rawDump()
        let database = damage.hasPrefix("subscriber") ? "subscribers" : damage.hasPrefix("event") ? "events" : "control"
        let says = damage == "extentOverlap" ? "ID 7 is already in the free index" : "database \(database)"
        func expectNamed<R>(_ body: () throws -> R, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                _ = try body()
                Issue.record("answered despite damage in \(database)", sourceLocation: sourceLocation)
            } catch let error as IOASIDError {
                #expect(error.code == .corruptStore && error.message.contains(says), "\(error)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("\(error)", sourceLocation: sourceLocation)
            }
        }
        switch database {
        case "subscribers": expectNamed { try store.subscribers() }
        case "events":
            if damage == "eventKey" {
                expectNamed { try store.status() }
                expectNamed { try store.allocate(in: 2) }  // an ALLOC event needs the next sequence
            } else {
                expectNamed { try store.pendingEvents(for: "kvm") }
            }
        default:
            if damage == "extentOverlap" {
                expectNamed { try store.free(7, in: 2) }
            } else if damage.hasPrefix("extent") {
                expectNamed { try store.allocate(in: 2) }
            } else {
                expectNamed { try store.sets() }
            }
        }
        #expect(try store.rawDump() == before)
    }

    @Test("A meta or ID record that fails its seal, is short, long or out of range: the call reading it fails with corruptStore naming its database", arguments: [
        ("capacitySeal", "meta"), ("capacityShort", "meta"), ("capacityLong", "meta"), ("capacityOne", "meta"),
        ("idShort", "ids"), ("idBadVersion", "ids"),
    ])
    func damagedRecords(damage: String, database: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, path) = try Self.populated(dir)
        let env = try Environment.open(path: path)
        let meta = try env.openDatabase(named: StoreLayout.DB.meta.rawValue), ids = try env.openDatabase(named: StoreLayout.DB.ids.rawValue)
        try env.write { txn in
            switch damage {
            case "capacitySeal":
                var value = try #require(try txn.get(StoreLayout.MetaKey.capacity, in: meta))
                value[0] ^= 0x01
                try txn.put(value, forKey: StoreLayout.MetaKey.capacity, in: meta)
            case "capacityShort": try txn.put(sealed: [0, 1], forKey: StoreLayout.MetaKey.capacity, in: meta)
            case "capacityLong": try txn.put(sealed: [0, 0, 4, 0, 0], forKey: StoreLayout.MetaKey.capacity, in: meta)
            case "capacityOne": try txn.put(sealed: ByteWriter.u32(1), forKey: StoreLayout.MetaKey.capacity, in: meta)
            case "idShort": try txn.put(sealed: [], forKey: StoreLayout.idKey(7), in: ids)
            default: try txn.put(sealed: [0xEE, 0, 0, 0, 2, 0], forKey: StoreLayout.idKey(7), in: ids)
            }
        }
        let before = try store.rawDump()
        let outcome = Result { () throws(IOASIDError) in database == "meta" ? "\(try store.capacity())" : "\(try store.find(7))" }
        guard case .failure(let error) = outcome else {
            Issue.record("answered \(outcome) from a damaged record")
            return
        }
        #expect(error.code == .corruptStore && error.message.contains("database \(database)"), "\(error)")
        if database == "meta" {
            expectError(.corruptStore) { try store.allocate(in: 2) }
        } else {
            expectError(.corruptStore) { try store.free(7, in: 2) }
        }
        #expect(try store.rawDump() == before)
    }

    @Test("An export of a set whose record counts more IDs than it holds is refused as corruptStore, and the set is left unfrozen")
    func exportCountMismatch() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, path) = try Self.populated(dir)
        let env = try Environment.open(path: path)
        let control = try env.openDatabase(named: StoreLayout.DB.control.rawValue)
        try env.write { txn in try Self.editSet(txn, control, 2) { $0.count = 25 } }
        var written = 0
        expectError(.corruptStore) { try store.exportSet(2, to: { written += $0.count }) }
        #expect(written == 0, "nothing reaches the sink before the count is checked")
        #expect(try store.set(2).isFrozen == false)
    }

    @Test("A damaged record is reported with its database and key; repair keeps the ID and says it cannot fix it")
    func damagedRecord() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, path) = try Self.populated(dir)
        let env = try Environment.open(path: path)
        let ids = try env.openDatabase(named: StoreLayout.DB.ids.rawValue)
        try env.write { txn in
            var value = try #require(try txn.get(StoreLayout.idKey(7), in: ids))
            value[5] ^= 0x01  // the owning set, without resealing
            try txn.put(value, forKey: StoreLayout.idKey(7), in: ids)
        }
        expectError(.corruptStore) { try store.find(7) }
        let damage = Result { () throws(IOASIDError) in try store.find(7) }
        if case .failure(let error) = damage {
            #expect(error.message.contains("database ids"), "\(error.message)")
        }
        let report = try store.verify()
        #expect(report.violations.map(\.code).contains("recordDamaged"), "\(report.violations)")
        let repaired = try store.repair()
        #expect(repaired.unrepairable.map(\.code).contains("recordDamaged"))
        // The damaged ID stays out of the free index: never handed out twice.
        let vm = try #require(try store.set(withToken: "vm:a")).id
        for _ in 0..<20 { #expect(try store.allocate(in: vm) != 7) }
    }

    @Test("verify through the CLI: exit 0 clean, 1 with violations; --repair fixes")
    func cli() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (_, path) = try Self.populated(dir)
        #expect(try CLI.run(["--store", path, "verify"]).status == 0)
        let env = try Environment.open(path: path)
        let tokens = try env.openDatabase(named: StoreLayout.DB.tokens.rawValue)
        try env.write { txn in _ = try txn.delete(StoreLayout.tokenKey("vm:a"), in: tokens) }
        let broken = try CLI.run(["--store", path, "--json", "verify"])
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("\"code\":\"tokenMissing\""))
        let fixed = try CLI.run(["--store", path, "verify", "--repair"])
        #expect(fixed.status == 0, "\(fixed.stdout)")
        #expect(fixed.stdout.contains("rebuilt 2 owner tokens"))
    }
}

@Suite("Backup and access")
struct BackupAccessTests {
    @Test("A hot backup taken while another process writes verifies clean")
    func hotBackup() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        do {
            let store = try IOASIDStore(path: path)
            _ = try store.createSet(token: "vm", quota: 10_000)
            try store.subscribe("s")
        }
        let writer = try CLI.start("ioasid-worker", ["churn", path, "2", "3"])
        Thread.sleep(forTimeInterval: 0.3)
        for (index, compact) in [false, true].enumerated() {
            let copy = try CLI.run(["--store", path, "backup", dir.child("backup\(index)")] + (compact ? ["--compact"] : []))
            #expect(copy.status == 0, "\(copy.stderr)")
            let verify = try CLI.run(["--store", dir.child("backup\(index)"), "verify"])
            #expect(verify.status == 0, "\(verify.stdout)")
        }
        writer.process.waitUntilExit()
        #expect(try CLI.run(["--store", path, "backup", dir.child("backup0")]).status == 64, "refuses a non-empty destination")
    }

    @Test("A store that other users could write is refused", arguments: ["", "/data.mdb"])
    func groupWritable(file: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        #expect(try CLI.run(["--store", path, "init"]).status == 0)
        let attributes = try FileManager.default.attributesOfItem(atPath: path + "/data.mdb")
        #expect(attributes[.posixPermissions] as? Int == 0o600)
        #expect(chmod(path + file, file.isEmpty ? 0o777 : 0o666) == 0)
        let refused = try CLI.run(["--store", path, "--json", "status"])
        #expect(refused.status == 3)
        #expect(refused.errorCode == "accessDenied")
        #expect(chmod(path + file, file.isEmpty ? 0o700 : 0o600) == 0)
        #expect(try CLI.run(["--store", path, "status"]).status == 0)
    }
}

@Suite("Review regressions")
struct ReviewRegressionTests {
    @Test("One environment per path, however the path is spelled")
    func oneEnvironmentPerPath() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let first = try Environment.open(path: dir.child("store"))
        let second = try Environment.open(path: dir.path + "/./store/")
        #expect(first === second)
    }

    @Test("A store already open in this process with other durability is refused")
    func durabilityMismatch() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        var relaxed = IOASIDStore.Options()
        relaxed.durability = .relaxed
        let store = try IOASIDStore(path: dir.child("store"), options: relaxed)
        expectError(.invalidArgument) { try IOASIDStore(path: dir.child("store")) }
        _ = store
    }

    @Test("Group-committed operations grow a full map instead of failing")
    func groupCommitGrowsMap() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        var options = IOASIDStore.Options()
        options.mapSize = 256 * 1024
        let store = try IOASIDStore(path: dir.child("store"), options: options)
        let vm = try await store.createSet(token: "vm", quota: 10_000)
        let ids = try await withThrowingTaskGroup(of: IOASID.self) { group in
            for _ in 0..<400 {
                group.addTask { try await store.allocate(in: vm, data: [UInt8](repeating: 7, count: 1024)) }
            }
            return try await group.reduce(into: [IOASID]()) { $0.append($1) }
        }
        #expect(Set(ids).count == 400)
        #expect(try store.verify().isClean)
    }

    @Test("Repair reclaims a stuck free-pending ID of a destroyed set and removes the set")
    func repairStuckDestroyPending() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        let store = try IOASIDStore(path: path)
        let vm = try store.createSet(token: "vm", quota: 10)
        let id = try store.allocate(in: vm)
        try store.retain(id, in: vm, holder: "dev")
        try store.freeSet(vm, destroy: true)
        let env = try Environment.open(path: path)
        let holds = try env.openDatabase(named: StoreLayout.DB.holds.rawValue)
        try env.write { txn in _ = try txn.delete(StoreLayout.holdKey(id: id.rawValue, holder: "dev"), in: holds) }
        #expect(try store.verify().violations.map(\.code) == ["pendingStuck"])
        let report = try store.repair()
        #expect(report.changes.contains("reclaimed ID \(id), which nothing held back"))
        #expect(try store.verify().isClean)
        expectError(.noSuchSet) { try store.set(vm) }
    }

    @Test("Operations that change nothing commit no event")
    func noOpNoEvent() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            try store.subscribe("s")
            try store.adjustQuota(of: vm, to: 10)
            try store.freeSet(vm, destroy: false)
            #expect(try store.pendingEvents(for: "s") == [])
        }
    }
}
