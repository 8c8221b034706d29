import IOASIDStore
import Testing

@Suite("Async API and group commit")
struct GroupCommitTests {
    @Test("Concurrent async allocations are distinct, durable and counted", arguments: [1, 16, 64])
    func concurrentAllocations(callers: Int) async throws {
        let dir = TemporaryDirectory()
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

    @Test("A refused operation in a group fails alone")
    func refusalFailsAlone() async throws {
        let dir = TemporaryDirectory()
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
        let dir = TemporaryDirectory()
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
}
