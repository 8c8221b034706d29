import IOASIDStore
import IOASIDTestSupport
import Testing

@Suite("Capacity, system set and sets")
struct CapacityAndSetTests {
    @Test("A new store boots with capacity 2^20 and a system set of quota 32768")
    func bootDefaults() throws {
        try withStore { store in
            let status = try store.status()
            #expect(status.capacity == 1 << 20)
            #expect(status.reserved == 32768)
            #expect(status.unreserved == UInt64(1 << 20) - 1 - 32768)
            #expect(status.allocated == 0)
            let system = try store.set(.system)
            #expect(system.isSystem)
            #expect(system.quota == 32768)
            #expect(system.token == "system")
        }
    }

    @Test("ID 0 is never handed out")
    func zeroIsReserved() throws {
        try withStore(capacity: 8, systemQuota: 7) { store in
            var got: [IOASID] = []
            for _ in 0..<7 { got.append(try store.allocate(in: .system)) }
            #expect(got == (1...7).map { IOASID($0) })
            try expectRefusal(.quotaExceeded, in: store) { tx in try tx.allocate(in: .system) }
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.allocate(in: .system, range: 0...3) }
        }
    }

    @Test("A set's quota is reserved from capacity; Σ quotas ≤ capacity − 1")
    func quotasReservedFromCapacity() throws {
        try withStore(capacity: 101, systemQuota: 10) { store in
            let a = try store.createSet(token: "vm:a", quota: 89)
            #expect(try store.status().unreserved == 1)
            try expectRefusal(.capacityExhausted, in: store) { tx in try tx.createSet(token: "vm:b", quota: 2) }
            let b = try store.createSet(token: "vm:b", quota: 1)
            #expect(try store.status().unreserved == 0)
            #expect(a != b)
            let status = try store.status()
            #expect(status.reserved == 100)
        }
    }

    @Test("Quota 0 and empty tokens are invalid", arguments: [("vm:x", UInt32(0)), ("", UInt32(5))])
    func invalidSetArguments(token: String, quota: UInt32) throws {
        try withStore { store in
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.createSet(token: token, quota: quota) }
        }
    }

    @Test("A token is unique among live sets and free again after destroy")
    func tokensUnique() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm:1234", quota: 1000)
            try expectRefusal(.duplicateToken, in: store) { tx in try tx.createSet(token: "vm:1234", quota: 5) }
            #expect(try store.set(withToken: "vm:1234")?.id == vm)
            try store.freeSet(vm, destroy: true)
            #expect(try store.set(withToken: "vm:1234") == nil)
            let again = try store.createSet(token: "vm:1234", quota: 1000)
            #expect(again != vm, "set IDs are not reused")
        }
    }

    @Test("Adjusting a quota compares the increase, not the whole quota")
    func adjustQuota() throws {
        try withStore(capacity: 101, systemQuota: 10) { store in
            let a = try store.createSet(token: "vm:a", quota: 50)  // unreserved: 40
            try store.adjustQuota(of: a, to: 90)  // delta 40 fits (v1 compared 90 > 40)
            #expect(try store.status().unreserved == 0)
            try expectRefusal(.capacityExhausted, in: store) { tx in try tx.adjustQuota(of: a, to: 91) }
            try store.adjustQuota(of: a, to: 20)  // a decrease returns capacity
            #expect(try store.status().unreserved == 70)
            for _ in 0..<5 { _ = try store.allocate(in: a) }
            try expectRefusal(.quotaBelowUsage, in: store) { tx in try tx.adjustQuota(of: a, to: 4) }
            try store.adjustQuota(of: a, to: 5)
            try expectRefusal(.quotaExceeded, in: store) { tx in try tx.allocate(in: a) }
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.adjustQuota(of: a, to: 0) }
            try expectRefusal(.noSuchSet, in: store) { tx in try tx.adjustQuota(of: 99, to: 5) }
        }
    }

    @Test("Capacity grows, and shrinks only when nothing lies above the new limit")
    func capacityChanges() throws {
        try withStore(capacity: 11, systemQuota: 5) { store in
            let vm = try store.createSet(token: "vm", quota: 5)
            for _ in 0..<5 { _ = try store.allocate(in: vm) }  // 1…5
            let last = try store.allocate(in: .system, range: 9...10)
            #expect(last == 9)
            try expectRefusal(.capacityInUse, in: store) { tx in try tx.setCapacity(9) }  // ID 9 in use
            try store.free(last, in: .system)
            try expectRefusal(.capacityInUse, in: store) { tx in try tx.setCapacity(10) }  // reserved 10 > 9
            try store.adjustQuota(of: .system, to: 4)
            try store.setCapacity(10)  // IDs 1…9, reserved 9
            #expect(try store.capacity() == 10)
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.allocate(in: .system, range: 9...10) }
            try store.setCapacity(20)
            try store.adjustQuota(of: .system, to: 14)
            #expect(try store.allocate(in: .system, range: 12...19) == 12)
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.setCapacity(1) }
        }
    }

    @Test("The system set cannot be destroyed, but can be emptied")
    func systemSetProtected() throws {
        try withStore { store in
            let id = try store.allocate(in: .system)
            try expectRefusal(.systemSetProtected, in: store) { tx in try tx.freeSet(.system, destroy: true) }
            let result = try store.freeSet(.system, destroy: false)
            #expect(result.freed == [id])
            #expect(!result.destroyed)
            #expect(try store.set(.system).allocated == 0)
        }
    }
}

@Suite("Allocation, lookups and freeing")
struct AllocationTests {
    @Test("Allocation hands out the lowest free ID, and a freed ID is reused first")
    func lowestFree() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 100)
            let ids = try (0..<5).map { _ in try store.allocate(in: vm) }
            #expect(ids == [1, 2, 3, 4, 5])
            try store.free(2, in: vm)
            try store.free(4, in: vm)
            #expect(try store.allocate(in: vm) == 2)
            #expect(try store.allocate(in: vm) == 4)
            #expect(try store.allocate(in: vm) == 6)
        }
    }

    @Test("Allocation in a range takes the lowest free ID inside it")
    func rangeAllocation() throws {
        try withStore { store in
            #expect(try store.allocate(in: .system, range: 100...200) == 100)
            #expect(try store.allocate(in: .system, range: 100...200) == 101)
            #expect(try store.allocate(in: .system, range: 50...100) == 50)
            #expect(try store.allocate(in: .system, range: 5...5) == 5)
            try expectRefusal(.rangeExhausted, in: store) { tx in try tx.allocate(in: .system, range: 5...5) }
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.allocate(in: .system, range: 1...(1 << 20)) }
            #expect(try store.allocate(in: .system, range: (1 << 20) - 1...(1 << 20) - 1) == IOASID((1 << 20) - 1))
        }
    }

    @Test("A VM's life: quota 1000, the 1001st allocation is refused, teardown frees all and returns the quota")
    func vmLife() throws {
        try withStore { store in
            let before = try store.status()
            let vm = try store.createSet(token: "vm:6f1c2a", quota: 1000)
            try store.write { tx in
                for _ in 0..<1000 { _ = try tx.allocate(in: vm) }
            }
            try expectRefusal(.quotaExceeded, in: store) { tx in try tx.allocate(in: vm) }
            try expectRefusal(.duplicateToken, in: store) { tx in try tx.createSet(token: "vm:6f1c2a", quota: 1) }
            let result = try store.freeSet(vm, destroy: true)
            #expect(result.freed.count == 1000)
            #expect(Set(result.freed).count == 1000)
            #expect(result.destroyed)
            #expect(try store.status() == before)
            try expectRefusal(.noSuchSet, in: store) { tx in try tx.allocate(in: vm) }
        }
    }

    @Test("Free-set without destroy keeps the set usable")
    func freeSetKeep() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 3)
            for _ in 0..<3 { _ = try store.allocate(in: vm) }
            let result = try store.freeSet(vm, destroy: false)
            #expect(result.freed == [1, 2, 3])
            #expect(try store.set(vm).allocated == 0)
            #expect(try store.allocate(in: vm) == 1)
        }
    }

    @Test("find checks set ownership; findSet names the owner; private data round-trips")
    func lookups() throws {
        try withStore { store in
            let a = try store.createSet(token: "vm:a", quota: 10)
            let b = try store.createSet(token: "vm:b", quota: 10)
            let id = try store.allocate(in: a, data: [0xde, 0xad, 0xbe, 0xef])
            let info = try store.find(id, in: a)
            #expect(info.data == [0xde, 0xad, 0xbe, 0xef])
            #expect(info.state == .allocated)
            #expect(try store.findSet(id) == a)
            expectError(.wrongSet) { try store.find(id, in: b) }
            expectError(.noSuchID) { try store.find(999) }
            expectError(.noSuchID) { try store.findSet(0) }
            try store.setData([1, 2], for: id, in: a)
            #expect(try store.find(id).data == [1, 2])
            try expectRefusal(.wrongSet, in: store) { tx in try tx.setData([3], for: id, in: b) }
            #expect(try store.ids(in: a) == [id])
            #expect(try store.ids(in: b) == [])
            expectError(.noSuchSet) { try store.ids(in: 77) }
        }
    }

    @Test("Freeing checks ownership and refusals change nothing")
    func freeRefusals() throws {
        try withStore { store in
            let a = try store.createSet(token: "vm:a", quota: 10)
            let b = try store.createSet(token: "vm:b", quota: 10)
            let id = try store.allocate(in: a)
            try expectRefusal(.wrongSet, in: store) { tx in try tx.free(id, in: b) }
            try expectRefusal(.noSuchID, in: store) { tx in try tx.free(42, in: a) }
            #expect(try store.free(id, in: a))
            try expectRefusal(.noSuchID, in: store) { tx in try tx.free(id, in: a) }
            try expectRefusal(.noSuchSet, in: store) { tx in try tx.freeSet(99, destroy: true) }
        }
    }

    @Test("A write closure commits all of its operations or none", arguments: [true, false])
    func writeIsAtomic(fail: Bool) throws {
        struct Abort: Error {}
        try withStore { store in
            let before = try store.rawDump()
            do {
                try store.write { tx in
                    let vm = try tx.createSet(token: "vm", quota: 10)
                    _ = try tx.allocate(in: vm)
                    if fail { throw Abort() }
                }
            } catch is Abort {}
            if fail {
                #expect(try store.rawDump() == before)
            } else {
                #expect(try store.set(withToken: "vm")?.allocated == 1)
            }
        }
    }

    @Test("Random allocations and frees match a model of lowest-free", arguments: [1, 2, 3, 4])
    func modelCheck(seed: UInt64) throws {
        var rng = SplitMix(seed: seed)
        try withStore(capacity: 200, systemQuota: 199) { store in
            var model = Set<UInt32>()
            for _ in 0..<600 {
                if model.isEmpty || rng.next() % 3 != 0 {
                    let lo = UInt32(rng.next() % 199) + 1
                    let hi = min(199, lo + UInt32(rng.next() % 60))
                    let expected = (lo...hi).first { !model.contains($0) }
                    if let expected {
                        #expect(try store.allocate(in: .system, range: lo...hi) == IOASID(expected))
                        model.insert(expected)
                    } else {
                        // Every ID in the range is taken; when that is the whole quota, the quota refuses first.
                        let refusal: IOASIDError.Code = model.count >= 199 ? .quotaExceeded : .rangeExhausted
                        try expectRefusal(refusal, in: store) { tx in try tx.allocate(in: .system, range: lo...hi) }
                    }
                } else {
                    // From the sorted IDs: a Set's order changes with each process's hash seed,
                    // and the seed must replay the same run.
                    let ids = model.sorted()
                    let victim = ids[Int(rng.next() % UInt64(ids.count))]
                    try store.free(IOASID(victim), in: .system)
                    model.remove(victim)
                }
            }
            #expect(Set(try store.ids(in: .system).map(\.rawValue)) == model)
        }
    }
}

