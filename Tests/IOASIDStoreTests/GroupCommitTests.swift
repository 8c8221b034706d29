import Foundation
import IOASIDStore
import IOASIDTestSupport
import LMDB
import Testing

@Suite("Async API and group commit")
struct GroupCommitTests {
    @Test("Concurrent async allocations are distinct, durable and counted", arguments: [1, 16, 64])
    func concurrentAllocations(callers: Int) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try IOASIDStore(path: dir.child("store"))
        let vm = try await store.createSet(token: "vm", quota: 10_000)
        let ids = try await withThrowingTaskGroup(of: [IOASID].self) { group in
            for _ in 0..<callers {
                group.addTask {
                    var mine: [IOASID] = []
                    for _ in 0..<10 { mine.append(try await store.allocate(in: vm)) }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(ids.count == callers * 10)
        #expect(Set(ids) == Set((1...UInt32(callers * 10)).map { IOASID($0) }))
        #expect(try store.set(vm).allocated == UInt32(callers * 10))
    }

    #if os(Linux)
    @Test("After a group commit the writer polls for its callers only briefly: idle, it sleeps")
    func idleWriterSleeps() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try IOASIDStore(path: dir.child("store"))
        let vm = try await store.createSet(token: "vm", quota: 10_000)
        let largest = LargestGroup()
        store.observeGroupCommits { size, _ in largest.saw(size) }
        // Rounds of 16 concurrent callers: commits of more than one operation, after which
        // the writer expects its callers back and polls for them.
        for _ in 0..<20 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<16 { group.addTask { _ = try await store.allocate(in: vm) } }
                try await group.waitForAll()
            }
        }
        #expect(largest.size > 1, "no commit carried more than one operation: the writer never polled")
        let before = try #require(store.writerThreadCPUTime)
        try await Task.sleep(for: .milliseconds(500))
        let used = try #require(store.writerThreadCPUTime) - before
        // Polling is bounded by half a commit's working time (200 µs at most): an idle
        // writer that went on polling would use most of the half second.
        #expect(used < .milliseconds(50), "the idle writer thread used \(used) of processor time in 500 ms")
    }
    #endif

    @Test("A refused operation in a group fails alone")
    func refusalFailsAlone() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try IOASIDStore(path: dir.child("store"))
        let small = try await store.createSet(token: "small", quota: 5)
        let big = try await store.createSet(token: "big", quota: 1000)
        // 20 callers race for a quota of 5 while others allocate elsewhere.
        let results = await withTaskGroup(of: (Bool, Result<IOASID, IOASIDError>).self) { group in
            for i in 0..<40 {
                group.addTask {
                    let inSmall = i % 2 == 0
                    do {
                        return (inSmall, .success(try await store.allocate(in: inSmall ? small : big)))
                    } catch let error as IOASIDError {
                        return (inSmall, .failure(error))
                    } catch {
                        return (inSmall, .failure(IOASIDError(.storageFailure, "\(error)")))
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let smallOK = results.filter { $0.0 }.compactMap { try? $0.1.get() }
        let smallRefused = results.filter { $0.0 }.compactMap { if case .failure(let e) = $0.1 { e } else { nil } }
        let bigOK = results.filter { !$0.0 }.compactMap { try? $0.1.get() }
        #expect(smallOK.count == 5)
        #expect(smallRefused.count == 15)
        #expect(smallRefused.allSatisfy { $0.code == .quotaExceeded })
        #expect(bigOK.count == 20)
        #expect(Set(smallOK + bigOK).count == 25)
        #expect(try store.set(small).allocated == 5)
        #expect(try store.set(big).allocated == 20)
    }

    @Test("An async write closure that throws rolls back only its own changes")
    func isolatedClosures() async throws {
        struct Abort: Error {}
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try IOASIDStore(path: dir.child("store"))
        let vm = try await store.createSet(token: "vm", quota: 100)
        async let good: IOASID = store.write { tx in try tx.allocate(in: vm) }
        async let bad: Result<Void, any Error> = {
            do {
                return .success(try await store.write { tx in
                    _ = try tx.allocate(in: vm)
                    _ = try tx.allocate(in: vm)
                    throw Abort()
                })
            } catch { return .failure(error) }
        }()
        let kept = try await good
        let outcome = await bad
        #expect(throws: Abort.self) { try outcome.get() }
        let held = try store.read { tx in try tx.ids(in: vm) }
        #expect(held == [kept])
    }

    /// The writer keeps each operation's result untyped until its caller resumes: each caller
    /// must get back exactly what its own closure returned, whatever the type.
    @Test("Each async caller gets back its own closure's result, of any type: nil, a nil inside an optional, nothing, a tuple")
    func resultsComeBackAsReturned() async throws {
        try await withStore { store in
            let vm = try await store.createSet(token: "vm", quota: 100)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<32 {
                    group.addTask {
                        switch caller % 4 {
                        case 0:
                            let found: IOASID? = try await store.write { tx in
                                caller % 8 == 0 ? nil : try tx.allocate(in: vm)
                            }
                            #expect((found == nil) == (caller % 8 == 0))
                        case 1:
                            let nested: String?? = try await store.write { _ in caller % 8 == 1 ? .some(nil) : .some("caller \(caller)") }
                            #expect(nested == (caller % 8 == 1 ? .some(nil) : .some("caller \(caller)")))
                        case 2:
                            try await store.write { tx in _ = try tx.capacity() }
                        default:
                            let pair: (Int, [UInt32]) = try await store.write { _ in (caller, [UInt32(caller), 7]) }
                            #expect(pair.0 == caller && pair.1 == [UInt32(caller), 7])
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try store.set(vm).allocated == 4)
        }
    }
}

@Suite("Group commit batching", .serialized)
struct GroupCommitBatchingTests {
    @Test("64 concurrent callers share commits, and every acknowledged allocation is there after reopening")
    func batchingIsRealAndDurable() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        let commits = Locked(0)
        var ids: [IOASID] = []
        do {
            let store = try IOASIDStore(path: path)
            let vm = try await store.createSet(token: "vm", quota: 100_000)
            FaultInjection.install(at: path) { point in
                if point == .commit { commits.withLock { $0 += 1 } }
                return nil
            }
            defer { FaultInjection.install(at: path, nil) }
            ids = try await withThrowingTaskGroup(of: [IOASID].self) { group in
                for _ in 0..<64 {
                    group.addTask {
                        var mine: [IOASID] = []
                        for _ in 0..<20 { mine.append(try await store.allocate(in: vm)) }
                        return mine
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        let operations = ids.count
        let count = commits.withLock { $0 }
        #expect(operations == 64 * 20)
        // Batching happened: far fewer durable commits than operations.
        #expect(count > 0 && count <= operations / 4, "\(operations) operations in \(count) commits")
        // The store object is gone; a new open reads what the commits made durable.
        let reopened = try IOASIDStore(path: path)
        let vm = try #require(try reopened.set(withToken: "vm")).id
        #expect(Set(try reopened.ids(in: vm)) == Set(ids))
        try expectClean(reopened)
    }
}

/// The largest group commit seen (told on the writer thread).
private final class LargestGroup: @unchecked Sendable {
    private let lock = NSLock()
    private var largest = 0
    func saw(_ size: Int) { lock.withLock { largest = max(largest, size) } }
    var size: Int { lock.withLock { largest } }
}
