import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Every set and ID of the store as a resync snapshot would show them.
private func state(of store: IOASIDStore) throws -> ([SetInfo], [IDInfo]) {
    let sets = try store.sets()
    var ids: [IDInfo] = []
    for set in sets { ids += try store.ids(in: set.id).map { try store.find($0) } }
    return (sets, ids.sorted { $0.id.rawValue < $1.id.rawValue })
}

@Suite("Consumers that go away: observers, lag limits, resync, ordering, waiting for reclaim")
struct ConsumerTests {
    @Test("An observer never delays a reclaim; a gating subscriber with the same filter does (the control)")
    func observerNeverDelays() throws {
        for kind in [SubscriberKind.observer, .gating] {
            try withStore { store in
                let vm = try store.createSet(token: "vm", quota: 10)
                try store.subscribe("s", options: SubscriptionOptions(kind: kind))
                let id = try store.allocate(in: vm)
                try store.free(id, in: vm)
                let state = try? store.find(id).state
                if kind == .observer {
                    #expect(state == nil, "the observer held the ID back")
                    #expect(try store.pendingEvents(for: "s").map(\.kind) == [.alloc, .free, .reclaim], "it still sees every event")
                    #expect(try store.subscriber("s").kind == .observer)
                } else {
                    #expect(state == .freePending, "control: a gating subscriber holds the ID back")
                    #expect(try store.find(id).waitingFor == ["s"])
                }
            }
        }
    }

    @Test("Past --max-lag a subscriber lapses: it stops holding IDs back, its events are pruned, SUBSCRIBER_LAPSED is committed, reads fail until resync; the resync snapshot is the exact state")
    func lapseAndResync() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 100)
            try store.subscribe("audit", options: SubscriptionOptions(kind: .observer))
            try store.subscribe("stuck", options: SubscriptionOptions(maxLag: 5))
            try store.subscribe("patient", filter: EventFilter(sets: [.system]))  // the control: never lapses, takes nothing here
            let ids = try (0..<3).map { _ in try store.allocate(in: vm) }
            try store.free(ids[0], in: vm)
            #expect(try store.find(ids[0]).waitingFor == ["stuck"], "4 events: within the limit, still held back")
            #expect(try store.subscriber("stuck").lag == 4)
            _ = try store.allocate(in: vm)
            #expect(try store.subscriber("stuck").state == .active, "5 events: at the limit, not past it")
            _ = try store.allocate(in: vm)
            #expect(try store.subscriber("stuck").state == .lapsed)
            expectError(.noSuchID) { try store.find(ids[0]) }
            let seen = try store.pendingEvents(for: "audit")
            #expect(seen.filter { $0.kind == .subscriberLapsed }.map(\.subscriber) == ["stuck"])
            #expect(seen.last?.kind == .reclaim && seen.last?.id == ids[0], "the released ID is reclaimed after SUBSCRIBER_LAPSED")
            #expect(try store.subscriber("patient").state == .active)
            expectError(.subscriberLapsed) { try store.pendingEvents(for: "stuck") }
            expectError(.subscriberLapsed) { try store.acknowledge("stuck", through: 1) }
            try store.acknowledge("audit", through: try store.status().lastSequence)
            #expect(try store.rawDump()["events"] == [], "nobody else needs the lapsed subscriber's events: pruned")

            try store.attach(guest: 101, to: ids[1], in: vm)
            try store.setData([1, 2], for: ids[2], in: vm)
            let snapshot = try store.resync("stuck")
            let (sets, idInfos) = try state(of: store)
            #expect(snapshot.sets == sets)
            #expect(snapshot.ids.sorted { $0.id.rawValue < $1.id.rawValue } == idInfos)
            #expect(snapshot.sequence == (try store.status().lastSequence))
            #expect(snapshot.store == (try store.info().storeID) && snapshot.epoch == 1)
            #expect(try store.subscriber("stuck").state == .active)
            try store.free(ids[1], in: vm)
            #expect(try store.pendingEvents(for: "stuck").map(\.kind) == [.unbind, .free], "after resync: exactly the events after the snapshot")
            #expect(try store.find(ids[1]).state == .freePending, "active again, it holds IDs back again")
        }
    }

    @Test("Past --max-age a subscriber lapses at the next commit; one within its age does not")
    func maxAge() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            try store.subscribe("slow", options: SubscriptionOptions(maxAge: .milliseconds(30)))
            try store.subscribe("fine", options: SubscriptionOptions(maxAge: .seconds(600)))
            let id = try store.allocate(in: vm)
            try store.free(id, in: vm)
            #expect(try store.find(id).state == .freePending)
            Thread.sleep(forTimeInterval: 0.1)
            _ = try store.allocate(in: vm)
            #expect(try store.subscriber("slow").state == .lapsed)
            #expect(try store.subscriber("fine").state == .active)
            #expect(try store.find(id).waitingFor == ["fine"])
        }
    }

    @Test("--after: B sees an event only once A acknowledged it; a chain orders what its middle filters out; reclaim waits for the whole chain; no self-loops; no removal under a follower")
    func ordering() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            try store.subscribe("vfio", options: SubscriptionOptions(kind: .observer))
            try store.subscribe("kvm", options: SubscriptionOptions(filter: EventFilter(kinds: [.free]), after: ["vfio"]))
            try store.subscribe("iommu", options: SubscriptionOptions(after: ["kvm"]))
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.subscribe("self", options: SubscriptionOptions(after: ["self"])) }
            try expectRefusal(.noSuchSubscriber, in: store) { tx in try tx.subscribe("x", options: SubscriptionOptions(after: ["nobody"])) }
            let id = try store.allocate(in: vm)
            try store.free(id, in: vm)
            #expect(try store.pendingEvents(for: "kvm").isEmpty)
            #expect(try store.pendingEvents(for: "iommu").isEmpty, "ALLOC is filtered out by kvm but still ordered behind vfio")
            expectError(.invalidArgument) { try store.acknowledge("iommu", through: 1) }
            #expect(try store.find(id).waitingFor.sorted() == ["iommu", "kvm"], "the observer at the head holds nothing back itself")
            try store.acknowledge("vfio", through: 1)
            #expect(try store.pendingEvents(for: "iommu").map(\.sequence) == [1], "ALLOC: vfio acknowledged it and kvm does not take it")
            #expect(try store.pendingEvents(for: "kvm").isEmpty)
            try store.acknowledge("vfio", through: 2)
            #expect(try store.pendingEvents(for: "kvm").map(\.kind) == [.free])
            #expect(try store.pendingEvents(for: "iommu").map(\.sequence) == [1], "FREE waits for kvm")
            try store.acknowledge("kvm", through: 2)
            #expect(try store.find(id).waitingFor == ["iommu"])
            try store.acknowledge("iommu", through: 2)
            expectError(.noSuchID) { try store.find(id) }
            try expectRefusal(.subscriberHasFollowers, in: store) { tx in try tx.unsubscribe("kvm") }
        }
    }

    @Test("find on a free-pending ID lists its holders and the gating subscribers it waits for; reclaimed(id) returns when the last lets go, or false at its timeout")
    func whyPendingAndWait() async throws {
        try await withStore { store in
            let vm = try await store.createSet(token: "vm", quota: 10)
            try store.subscribe("kvm")
            let id = try await store.allocate(in: vm)
            try store.retain(id, in: vm, holder: "vfio")
            try await store.free(id, in: vm)
            let info = try store.find(id)
            #expect(info.holders == ["vfio"] && info.waitingFor == ["kvm"])
            #expect(try await store.reclaimed(id, timeout: .milliseconds(100)) == false)
            try await store.acknowledge("kvm", through: try store.status().lastSequence)
            #expect(try store.find(id).waitingFor.isEmpty && store.find(id).holders == ["vfio"])
            let waiter = Task { try await store.reclaimed(id, timeout: .seconds(60)) }
            try await Task.sleep(for: .milliseconds(100))
            try store.release(id, in: vm, holder: "vfio")
            #expect(try await waiter.value, "returned once the last holder released it")
            expectError(.noSuchID) { try store.find(id) }
        }
    }

    @Test("Capacity changes commit a store-wide CAPACITY event (not seen by a set-filtered subscriber)")
    func capacityEvent() throws {
        try withStore(capacity: 4096, systemQuota: 16) { store in
            try store.subscribe("all")
            try store.subscribe("one", filter: EventFilter(sets: [.system]))
            try store.setCapacity(8192)
            let events = try store.pendingEvents(for: "all")
            #expect(events.map(\.kind) == [.capacity] && events.first?.capacity == 8192 && events.first?.set == nil)
            #expect(try store.pendingEvents(for: "one").isEmpty)
        }
    }
}

@Suite("Store epochs: restoring a backup never repeats (store, epoch, sequence)")
struct EpochTests {
    @Test("Restore gives a new epoch; events after it never repeat a (store, epoch, sequence) seen before; a consumer ahead of the restored outbox is told")
    func restoreNewEpoch() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        var options = IOASIDStore.Options()
        options.capacity = 4096
        options.systemQuota = 16
        let store = try IOASIDStore(path: dir.child("store"), options: options)
        try store.subscribe("kvm")
        let vm = try store.createSet(token: "vm", quota: 100)
        for _ in 0..<5 { _ = try store.allocate(in: vm) }
        let atBackup = Int(try store.status().lastSequence)
        _ = try store.backup(to: dir.child("backup"))
        _ = try store.backup(to: dir.child("backup2"))
        for _ in 0..<5 { _ = try store.allocate(in: vm) }
        var seen = try store.pendingEvents(for: "kvm")
        let consumerCursor = try #require(seen.last?.sequence)
        #expect(seen.allSatisfy { $0.epoch == 1 })

        let restored = try IOASIDStore.restore(from: dir.child("backup"), to: dir.child("restored"), options: options)
        let epoch = try restored.info().epoch
        #expect(epoch > 1)
        #expect(try restored.info().storeID == store.info().storeID)
        expectError(.storeRestored) { try restored.acknowledge("kvm", through: consumerCursor) }
        expectError(.storeRestored) { try restored.pendingEvents(for: "kvm", after: consumerCursor) }
        for _ in 0..<8 { _ = try restored.allocate(in: vm) }
        let after = try restored.pendingEvents(for: "kvm")
        #expect(after.suffix(8).allSatisfy { $0.epoch == epoch })
        // The restored store now has more events than the consumer saw: only the epoch tells them apart.
        #expect(try restored.status().lastSequence > consumerCursor)
        expectError(.storeRestored) { try restored.acknowledge("kvm", through: consumerCursor, epoch: 1) }
        expectError(.storeRestored) { try restored.acknowledge("kvm", through: 1, epoch: 12345) }
        try restored.acknowledge("kvm", through: UInt64(atBackup), epoch: 1)  // what the backup kept is shared
        try restored.acknowledge("kvm", through: UInt64(atBackup) + 1, epoch: epoch)
        seen += after
        struct Key: Hashable { let store: String; let epoch: UInt32; let sequence: UInt64 }
        let keys = seen.map { Key(store: $0.store, epoch: $0.epoch, sequence: $0.sequence) }
        #expect(Set(keys).count == keys.count - atBackup, "only the events the backup kept are delivered again (same contents)")
        // Without epochs, sequences repeat with other contents: the check this test relies on can fail.
        let bare = seen.map(\.sequence)
        #expect(Set(bare).count < keys.count - atBackup, "control: sequence numbers alone repeat after the restore")
        for (old, new) in zip(seen, after) where new.epoch == 1 {
            #expect(old == new, "an event of epoch 1 kept by the backup is the same event")
        }
        #expect(try restored.verify().isClean)

        // Opening the backup itself for writing (a copy) starts a new epoch too, and once only.
        let copy = try IOASIDStore(path: dir.child("backup"), options: { var o = options; o.creation = .openExisting; return o }())
        #expect(try copy.info().epoch > 1)
        // Restoring the same backup again (a second later) gives yet another epoch: no (store, epoch, sequence) repeats.
        Thread.sleep(forTimeInterval: 1.05)
        let second = try IOASIDStore.restore(from: dir.child("backup2"), to: dir.child("restored2"), options: options)
        #expect(try second.info().epoch > 1 && second.info().epoch != epoch, "restored twice from one backup, one epoch")
        let again = try IOASIDStore(path: dir.child("store"), options: { var o = options; o.creation = .openExisting; return o }())
        #expect(try again.info().epoch == 1, "the original is no copy")
    }
}

@Suite("Owners that go away: leases, process owners, reap")
struct OwnerTests {
    @Test("A lease unrenewed for two periods is reaped (SET_EXPIRED, then FREEs and SET_FREE); a renewed one is not; a second reap does nothing")
    func leases() throws {
        try withStore { store in
            try store.subscribe("audit", options: SubscriptionOptions(kind: .observer))
            let lease = Duration.seconds(10)
            let old = try store.createSet(token: "vm:old", quota: 10, owner: SetOwner(lease: lease))
            let live = try store.createSet(token: "vm:live", quota: 10, owner: SetOwner(lease: lease))
            let plain = try store.createSet(token: "vm:plain", quota: 10)
            let ids = try (0..<3).map { _ in try store.allocate(in: old) }
            _ = try store.allocate(in: live)
            let createdAt = try #require(try store.set(old).renewedAt)
            #expect(try store.set(old).leaseMillis == 10_000)
            Thread.sleep(forTimeInterval: 0.05)
            try store.renew(live)  // the live set's owner renews; the old one's does not
            expectError(.invalidArgument) { try store.renew(plain) }
            #expect(try store.write { try $0.reap(now: createdAt + 20_000) }.isEmpty, "two lease periods exactly: kept")
            let sequenceBefore = try store.status().lastSequence
            let reaped = try store.write { try $0.reap(now: createdAt + 20_001) }
            #expect(reaped.map(\.set) == [old], "renewed: kept")
            expectError(.noSuchSet) { try store.renew(old) }
            #expect(reaped.first { $0.set == old }?.reason == .leaseExpired)
            #expect(reaped.first { $0.set == old }?.freed == 3)
            let events = try store.pendingEvents(for: "audit", after: sequenceBefore).filter { $0.set == old }
            #expect(events.map(\.kind) == [.setExpired, .free, .reclaim, .free, .reclaim, .free, .reclaim, .setFree])
            #expect(Set(events.compactMap(\.id)) == Set(ids))
            #expect(try store.write { try $0.reap(now: createdAt + 20_001) }.isEmpty, "idempotent")
            #expect(try store.sets().map(\.id).sorted { $0.rawValue < $1.rawValue } == [.system, live, plain])
        }
    }

    @Test("A set owned by a process is reaped once the process is killed (SIGKILL, waited for or a zombie), not while it runs; a missing process cannot own a set")
    func processOwners() throws {
        try withStore { store in
            func spawnSleeper() throws -> pid_t {
                var pid: pid_t = 0
                let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
                defer { for p in argv { free(p) } }
                let rc = posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ)
                guard rc == 0 else { throw SupportCheckFailed("posix_spawn failed: \(rc)") }
                return pid
            }
            let waited = try spawnSleeper()
            let zombie = try spawnSleeper()
            let a = try store.createSet(token: "vm:a", quota: 10, owner: SetOwner(process: waited))
            let b = try store.createSet(token: "vm:b", quota: 10, owner: SetOwner(process: zombie))
            let mine = try store.createSet(token: "vm:me", quota: 10, owner: SetOwner(process: getpid()))
            _ = try store.allocate(in: a)
            _ = try store.allocate(in: b)
            #expect(try store.reap().isEmpty, "both owners run")
            #expect(try store.set(a).ownerProcess == waited)
            kill(waited, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(waited, &status, 0)
            let first = try store.reap()
            #expect(first.map(\.set) == [a] && first.first?.reason == .ownerGone)
            kill(zombie, SIGKILL)
            // Not waited for yet: a zombie whose /proc entry (and start time) remain.
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline, (try? String(contentsOfFile: "/proc/\(zombie)/stat", encoding: .utf8))?.contains(") Z ") != true {
                Thread.sleep(forTimeInterval: 0.01)
            }
            #expect((try? String(contentsOfFile: "/proc/\(zombie)/stat", encoding: .utf8))?.contains(") Z ") == true)
            let second = try store.reap()
            _ = waitpid(zombie, &status, 0)
            #expect(second.map(\.set) == [b], "a zombie is gone")
            #expect(try store.set(mine).ownerProcess == getpid())
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.createSet(token: "vm:ghost", quota: 1, owner: SetOwner(process: waited)) }
        }
    }
}
