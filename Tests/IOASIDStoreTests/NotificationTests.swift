import Foundation
import IOASIDMigrations
import IOASIDStore
import LMDB
import IOASIDTestSupport
import Testing

@Suite("Outbox, subscribers, free-pending and holds")
struct NotificationTests {
    @Test("Every operation commits exactly one event per transition, in order")
    func eventsPerOperation() throws {
        try withStore { store in
            try store.subscribe("iommu")
            let vm = try store.createSet(token: "vm:a", quota: 10)
            let id = try store.allocate(in: vm)
            try store.adjustQuota(of: vm, to: 20)
            try store.free(id, in: vm)
            #expect(try store.free(id, in: vm) == false, "a second free is a no-op")
            let events = try store.pendingEvents(for: "iommu")
            #expect(events.map(\.kind) == [.setCreate, .alloc, .setQuota, .free])
            #expect(events.map(\.sequence) == [1, 2, 3, 4])
            #expect(events.allSatisfy { $0.set == vm && $0.token == "vm:a" })
            #expect(events[0].quota == 10)
            #expect(events[2].quota == 20)
            #expect(events[1].id == id && events[3].id == id)
            #expect(try store.find(id).state == .freePending)
            try store.acknowledge("iommu", through: 4)
            let after = try store.pendingEvents(for: "iommu")
            #expect(after.map(\.kind) == [.reclaim])
            #expect(after.first?.sequence == 5)
            #expect(after.first?.id == id)
            expectError(.noSuchID) { try store.find(id) }
        }
    }

    @Test("Free-set commits one FREE per ID it frees and one SET_FREE; pending IDs are not freed twice")
    func freeSetEvents() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            let ids = try (0..<4).map { _ in try store.allocate(in: vm) }
            try store.subscribe("s")
            try store.free(ids[1], in: vm)
            let result = try store.freeSet(vm, destroy: true)
            #expect(result.freed == [ids[0], ids[2], ids[3]])
            let events = try store.pendingEvents(for: "s")
            #expect(events.map(\.kind) == [.free, .free, .free, .free, .setFree])
            #expect(events.filter { $0.kind == .free }.compactMap(\.id).sorted() == ids.sorted())
            #expect(events.last?.destroy == true)
        }
    }

    @Test("With no subscriber and no holder, a free reclaims at once and the outbox stays empty")
    func noSubscribers() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            let id = try store.allocate(in: vm)
            try store.free(id, in: vm)
            expectError(.noSuchID) { try store.find(id) }
            #expect(try store.rawDump()["events"] == [])
            #expect(try store.status().lastSequence == 0)
        }
    }

    @Test("A freed ID stays free-pending until the interested subscriber acknowledges, then is handed out again")
    func freePendingUntilAck() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            try store.subscribe("kvm", filter: EventFilter(sets: [vm]))
            let ids = try (0..<3).map { _ in try store.allocate(in: vm) }  // 1, 2, 3
            try store.free(ids[0], in: vm)
            let pending = try store.pendingEvents(for: "kvm")
            #expect(try store.allocate(in: vm) == 4, "a free-pending ID is never handed out")
            try expectRefusal(.idFreePending, in: store) { tx in try tx.retain(ids[0], in: vm, holder: "dev") }
            try expectRefusal(.wrongSet, in: store) { tx in try tx.free(ids[0], in: .system) }
            #expect(try store.status().freePending == 1)
            #expect(try store.set(vm).allocated == 4, "free-pending IDs still count against the quota")
            let freeEvent = try #require(pending.last)
            #expect(freeEvent.kind == .free)
            try store.acknowledge("kvm", through: freeEvent.sequence - 1)
            #expect(try store.find(ids[0]).state == .freePending)
            try store.acknowledge("kvm", through: freeEvent.sequence)
            #expect(try store.status().freePending == 0)
            #expect(try store.pendingEvents(for: "kvm").map(\.kind) == [.alloc, .reclaim])
            #expect(try store.allocate(in: vm) == ids[0], "reclaimed: the lowest-free rule hands it out again")
        }
    }

    @Test("A subscriber of another set, or of other kinds, does not hold an ID back")
    func uninterestedSubscribers() throws {
        try withStore { store in
            let a = try store.createSet(token: "vm:a", quota: 10)
            let b = try store.createSet(token: "vm:b", quota: 10)
            try store.subscribe("only-b", filter: EventFilter(sets: [b]))
            try store.subscribe("only-alloc", filter: EventFilter(kinds: [.alloc]))
            let id = try store.allocate(in: a)
            try store.free(id, in: a)
            expectError(.noSuchID) { try store.find(id) }
            #expect(try store.pendingEvents(for: "only-b") == [])
            #expect(try store.pendingEvents(for: "only-alloc").map(\.kind) == [.alloc])
        }
    }

    @Test("A holder keeps a freed ID pending until it releases it")
    func holds() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            let id = try store.allocate(in: vm)
            #expect(try store.retain(id, in: vm, holder: "vfio"))
            #expect(try store.retain(id, in: vm, holder: "vfio") == false)
            #expect(try store.retain(id, in: vm, holder: "kvm"))
            #expect(try store.holders(of: id) == ["kvm", "vfio"])
            try store.free(id, in: vm)
            #expect(try store.find(id).state == .freePending)
            try store.release(id, in: vm, holder: "vfio")
            #expect(try store.find(id).state == .freePending)
            try expectRefusal(.noSuchHold, in: store) { tx in try tx.release(id, in: vm, holder: "vfio") }
            try store.release(id, in: vm, holder: "kvm")
            expectError(.noSuchID) { try store.find(id) }
            #expect(try store.allocate(in: vm) == id)
        }
    }

    @Test("A subscriber sees only events committed after it subscribed")
    func subscribeLater() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            try store.subscribe("early")
            _ = try store.allocate(in: vm)
            try store.subscribe("late")
            let id = try store.allocate(in: vm)
            #expect(try store.pendingEvents(for: "early").count == 2)
            let late = try store.pendingEvents(for: "late")
            #expect(late.map(\.id) == [id])
            try expectRefusal(.duplicateSubscriber, in: store) { tx in try tx.subscribe("late") }
            try expectRefusal(.noSuchSet, in: store) { tx in try tx.subscribe("x", filter: EventFilter(sets: [99])) }
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.subscribe("") }
        }
    }

    @Test("Once every subscriber has acknowledged everything, the outbox holds nothing")
    func outboxDrains() throws {
        try withStore { store in
            try store.subscribe("a")
            try store.subscribe("b", filter: EventFilter(kinds: [.free, .reclaim]))
            let vm = try store.createSet(token: "vm", quota: 100)
            try store.write { tx in
                for _ in 0..<50 { _ = try tx.allocate(in: vm) }
            }
            try store.freeSet(vm, destroy: true)
            var last = try store.status().lastSequence
            // Acknowledging reclaims IDs, which commits RECLAIM events: drain until quiet.
            while try store.subscribers().contains(where: { $0.lag > 0 }) {
                try store.acknowledge("a", through: last)
                try store.acknowledge("b", through: last)
                last = try store.status().lastSequence
            }
            #expect(try store.rawDump()["events"] == [])
            #expect(try store.rawDump()["pending"] == [])
            expectError(.noSuchSet) { try store.allocate(in: vm) }
            #expect(try store.status().sets.count == 1, "the destroyed set went away with its last ID")
            let sequenceBefore = try store.status().lastSequence
            _ = try store.allocate(in: .system)
            #expect(try store.pendingEvents(for: "a").first?.sequence == sequenceBefore + 1, "sequence numbers never go back")
        }
    }

    @Test("Free-set with destroy waits for free-pending IDs, then returns the quota")
    func destroyWaitsForPending() throws {
        try withStore { store in
            let before = try store.status().unreserved
            let vm = try store.createSet(token: "vm", quota: 10)
            let id = try store.allocate(in: vm)
            _ = try store.allocate(in: vm)
            try store.retain(id, in: vm, holder: "dev")
            let result = try store.freeSet(vm, destroy: true)
            #expect(result.freed.count == 2)
            #expect(!result.destroyed)
            #expect(try store.set(vm).isDestroyPending)
            #expect(try store.set(withToken: "vm") == nil, "the token is free at once")
            #expect(try store.status().unreserved == before - 10)
            try store.release(id, in: vm, holder: "dev")
            expectError(.noSuchSet) { try store.set(vm) }
            #expect(try store.status().unreserved == before)
        }
    }

    @Test("Unsubscribing releases every ID the subscriber held back")
    func unsubscribeReleases() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            try store.subscribe("gone")
            let id = try store.allocate(in: vm)
            try store.free(id, in: vm)
            #expect(try store.find(id).state == .freePending)
            try store.unsubscribe("gone")
            expectError(.noSuchID) { try store.find(id) }
            #expect(try store.rawDump()["events"] == [])
            try expectRefusal(.noSuchSubscriber, in: store) { tx in try tx.unsubscribe("gone") }
        }
    }

    @Test("Acknowledgements are cumulative, idempotent and bounded by the last event")
    func acknowledgementRules() throws {
        try withStore { store in
            try store.subscribe("s")
            _ = try store.allocate(in: .system)
            _ = try store.allocate(in: .system)
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.acknowledge("s", through: 3) }
            try store.acknowledge("s", through: 2)
            try store.acknowledge("s", through: 1)
            #expect(try store.subscriber("s").acknowledgedThrough == 2)
            try expectRefusal(.noSuchSubscriber, in: store) { tx in try tx.acknowledge("nobody", through: 1) }
        }
    }

    @Test("A refused operation commits no event")
    func refusalsEmitNothing() throws {
        try withStore { store in
            try store.subscribe("s")
            let vm = try store.createSet(token: "vm", quota: 1)
            _ = try store.allocate(in: vm)
            try expectRefusal(.quotaExceeded, in: store) { tx in try tx.allocate(in: vm) }
            try expectRefusal(.duplicateToken, in: store) { tx in try tx.createSet(token: "vm", quota: 1) }
            #expect(try store.pendingEvents(for: "s").count == 2)
        }
    }

    @Test("The event stream delivers new commits promptly, in order, from the acknowledged point")
    func eventStream() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try IOASIDStore(path: dir.child("store"))
        try store.subscribe("agent")
        let first = try await store.allocate(in: .system)
        let consumer = Task {
            var seen: [Event] = []
            var waited = Duration.zero
            var waitingSince = ContinuousClock.now
            for try await event in store.events(for: "agent", pollInterval: .seconds(60)) {
                seen.append(event)
                if seen.count == 1 { waitingSince = ContinuousClock.now }  // from here it waits for commits
                if seen.count == 4 {
                    waited = ContinuousClock.now - waitingSince
                    break
                }
            }
            return (seen, waited)
        }
        try await Task.sleep(for: .milliseconds(50))
        for _ in 0..<3 { _ = try await store.allocate(in: .system) }
        let (seen, waited) = try await consumer.value
        // Timed by the consumer itself (a loaded 2-core machine running the whole suite can
        // delay when it runs at all): well under the 60 s poll, so the commit woke it.
        #expect(waited < .seconds(45), "woken by the commit, not by the 60 s poll (waited \(waited))")
        #expect(seen.map(\.sequence) == [1, 2, 3, 4])
        #expect(seen.first?.id == first)
        // Not acknowledged: a new stream starts from the same place.
        var again = store.events(for: "agent").makeAsyncIterator()
        #expect(try await again.next()?.sequence == 1)
        try await store.acknowledge("agent", through: 3)
        var resumed = store.events(for: "agent").makeAsyncIterator()
        #expect(try await resumed.next()?.sequence == 4)
    }

    @Test("A v1 store (fixture) is upgraded in place with its data intact")
    func upgradeFromSchemaV1() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try loadFixture("schema-v1", into: dir)
        let status = try store.status()
        #expect(status.capacity == 4096)
        #expect(status.sets.map(\.token) == ["system", "vm:alpha", "vm:beta"])
        #expect(status.sets.map(\.quota) == [64, 100, 60])
        #expect(try store.find(1, in: 2).data == [0x0a, 0x0b])
        #expect(try store.findSet(200) == 3)
        #expect(try store.findSet(3) == 1)
        expectError(.noSuchID) { try store.find(2) }
        #expect(try store.allocate(in: 2) == 2, "the free index survived the upgrade")
        try store.subscribe("new")
        _ = try store.allocate(in: 2)
        #expect(try store.pendingEvents(for: "new").map(\.kind) == [.alloc])
    }

    @Test("A v2 store (fixture) is upgraded with its subscriber, hold and free-pending IDs intact")
    func upgradeFromSchemaV2() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try loadFixture("schema-v2", into: dir)
        // v2 fixture: set 2 holds 1 (allocated), 2 (free-pending, FREE #1 unacknowledged)
        // and 3 (free-pending, held by vfio, FREE #2); subscriber kvm takes FREE and RECLAIM.
        #expect(try store.find(1, in: 2).data == [0x0a, 0x0b])
        #expect(try store.find(2).state == .freePending)
        #expect(try store.holders(of: 3) == ["vfio"])
        #expect(try store.pendingEvents(for: "kvm").map(\.sequence) == [1, 2])
        try store.acknowledge("kvm", through: 2)
        expectError(.noSuchID) { try store.find(2) }
        #expect(try store.find(3).state == .freePending, "still held by vfio")
        try store.release(3, in: 2, holder: "vfio")
        expectError(.noSuchID) { try store.find(3) }
        #expect(try store.pendingEvents(for: "kvm").map(\.kind) == [.reclaim, .reclaim])
        #expect(try store.allocate(in: 2, guest: 9) == 2, "guest IDs (schema v3) work on the upgraded store")
    }
}

@Suite("Schema upgrades")
struct SchemaUpgradeTests {
    @Test("A v3 store (fixture) is upgraded to sealed records with extents keyed by their last ID, its data intact")
    func v3ToV4() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try loadFixture("schema-v3", into: dir)
        try expectClean(store)
        let status = try store.status()
        // The fixture, as its commit's CLI printed it.
        #expect(status.capacity == 4096)
        #expect(status.reserved == 149)
        #expect(status.allocated == 8)
        #expect(status.freePending == 4)
        #expect(status.sets.map(\.token) == ["system", "vm:fixture-a", "vm:fixture-b", "vm:gone", "vm:fixture-b-imported"])
        #expect(status.subscribers.map(\.lag) == [19, 2])
        #expect(status.lastSequence == 22)
        #expect(try store.find(1, in: 2).data == [0xca, 0xfe])
        #expect(try store.hostID(forGuest: 101, in: 2) == 1)
        #expect(try store.hostID(forGuest: 101, in: 5) == 7)
        #expect(try store.holders(of: 3) == ["dev0"])
        // The free index still hands out the lowest free ID, now from extents keyed by their last ID.
        let fresh = try store.allocate(in: 2)
        #expect(fresh == 8)
        let env = try Environment.open(path: dir.child("store"))
        #expect(try Migrator.appliedVersions(in: env) == [1, 2, 3, 4, 5])
        try expectClean(store)
    }

    @Test("A v4 store (fixture) is upgraded to v5: store identity, epoch 1, gating subscribers, events carry the store")
    func v4ToV5() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try loadFixture("schema-v4", into: dir)
        try expectClean(store)
        let status = try store.status()
        #expect(status.capacity == 4096)
        #expect(status.allocated == 8)
        #expect(status.freePending == 4)
        #expect(status.subscribers.map(\.lag) == [19, 2])
        #expect(status.subscribers.allSatisfy { $0.kind == .gating && $0.state == .active })
        #expect(status.lastSequence == 22)
        let info = try store.info()
        let id = info.storeID
        #expect(id.count == 32)
        #expect(info.epoch == 1)
        let events = try store.read { try $0.pendingEvents(for: status.subscribers[0].name) }
        #expect(events.allSatisfy { $0.store == id && $0.epoch == 1 })
        // The old records still decode and the rules still hold them: reclaim waits for the subscribers.
        #expect(try store.holders(of: 3) == ["dev0"])
        let env = try Environment.open(path: dir.child("store"))
        #expect(try Migrator.appliedVersions(in: env) == [1, 2, 3, 4, 5])
        try expectClean(store)
    }

    @Test("A v5 store opened by code that knows only v3 is refused as newer")
    func newerRefused() throws {
        try withStore { store in
            let env = try Environment.open(path: store.path)
            #expect(throws: MigrationError.newerSchema(storeVersion: 5, supportedVersion: 3)) {
                try Migrator.migrate(env, migrations: Array(Migrations.all.prefix(3)), now: { 0 })
            }
            #expect(throws: MigrationError.newerSchema(storeVersion: 5, supportedVersion: 3)) {
                _ = try Migrator.pendingMigrations(in: env, migrations: Array(Migrations.all.prefix(3)))
            }
            // A history that skips a number is damage (a flipped key), not a newer schema.
            let history = try env.openDatabase(named: StoreLayout.historyDatabase)
            try env.write { txn in _ = try txn.put(Array("x".utf8), forKey: StoreLayout.migrationKey(0x0500_0005), in: history) }
            #expect(throws: MigrationError.corruptHistory("recorded [1, 2, 3, 4, 5, 83886085]: not a contiguous history from 1")) {
                _ = try Migrator.pendingMigrations(in: env, migrations: Array(Migrations.all.prefix(3)))
            }
            // A known number recorded under another name is damage too (a damaged tree can point the
            // history at another database's page, whose keys read as 1, 2, 3, …).
            try env.write { txn in
                _ = try txn.delete(StoreLayout.migrationKey(0x0500_0005), in: history)
                _ = try txn.put(StoreLayout.migrationValue(appliedAt: 0, name: "notTheName"), forKey: StoreLayout.migrationKey(2), in: history)
            }
            #expect(throws: MigrationError.corruptHistory("migration 2's record does not name it \"\(Migrations.all[1].name)\"")) {
                _ = try Migrator.pendingMigrations(in: env)
            }
        }
    }
}
