import IOASIDStore
import IOASIDTestSupport
import LMDB
import Foundation
import Testing

/// Tasks that prefer ``IOASIDStore/writerExecutor``: they run on the writer thread
/// between two commits and submit their next operations from there.
@Suite("Callers on the writer's executor")
struct WriterExecutorTests {
    /// A store whose synchronous writes go through the writer thread (as the
    /// service opens it) when `throughWriter`, or commit on the calling thread.
    private static func open(_ dir: TemporaryDirectory, throughWriter: Bool) throws -> IOASIDStore {
        var options = IOASIDStore.Options()
        options.synchronousWritesThroughWriter = throughWriter
        return try IOASIDStore(path: dir.child("store"), options: options)
    }

    @Test("16 tasks on the writer's executor run on the writer thread, share commits and leave a clean store")
    func callersRunOnTheWriter() async throws {
        // withStore checks the store's invariants (verify) when the body returns.
        try await withStore { store in
            let vm = try await store.createSet(token: "vm", quota: 1000)
            let groups = Locked<[Int]>([])
            store.observeGroupCommits { size, _ in groups.withLock { $0.append(size) } }
            let (operations, offWriter) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for _ in 0..<16 {
                    group.addTask(executorPreference: store.writerExecutor) {
                        var offWriter = 0
                        for _ in 0..<25 {
                            let id = try await store.allocate(in: vm)
                            if !store.onWriterThread { offWriter += 1 }
                            try await store.free(id, in: vm)
                            if !store.onWriterThread { offWriter += 1 }
                        }
                        return (50, offWriter)
                    }
                }
                return try await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
            }
            #expect(operations == 800)
            #expect(offWriter == 0, "a caller on the writer's executor resumed on another thread")
            let sizes = groups.withLock { $0 }
            #expect(sizes.reduce(0, +) >= 800)
            #expect((sizes.max() ?? 0) > 1, "the callers' operations never shared a commit")
            #expect(try store.set(vm).allocated == 0)
        }
    }

    @Test("A refusal reaches a caller on the writer's executor, and its group commits")
    func refusalReachesTheCaller() async throws {
        try await withStore { store in
            let small = try await store.createSet(token: "small", quota: 3)
            let results = await withTaskGroup(of: IOASIDError.Code?.self) { group in
                for _ in 0..<8 {
                    group.addTask(executorPreference: store.writerExecutor) {
                        do {
                            _ = try await store.allocate(in: small)
                            return store.onWriterThread ? nil : .internalError
                        } catch let error as IOASIDError {
                            return store.onWriterThread ? error.code : .internalError
                        } catch {
                            return .internalError
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { $0 == nil }.count == 3)
            #expect(results.compactMap { $0 } == Array(repeating: IOASIDError.Code.quotaExceeded, count: 5))
            #expect(try store.set(small).allocated == 3)
        }
    }

    @Test(
        "A synchronous write and a read from a task on the writer's executor do not wait for the writer thread",
        .timeLimit(.minutes(1)),
        arguments: [false, true]
    )
    func synchronousCallsFromTheWriter(throughWriter: Bool) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try Self.open(dir, throughWriter: throughWriter)
        let vm = try await store.createSet(token: "vm", quota: 100)
        let (onWriter, id, owner) = try await Task(executorPreference: store.writerExecutor) {
            _ = try await store.allocate(in: vm)
            // Now on the writer thread, between two commits.
            return try Self.synchronousCalls(store, vm)
        }.value
        #expect(onWriter)
        #expect(owner == vm)
        #expect(try store.set(vm).allocated == 2)
        #expect(try store.findSet(id) == vm)
        try expectClean(store)
    }

    @Test("Tasks on the writer's executor never run inside the group's transaction: 16 of them each make a synchronous write after an async one, beside callers on another executor", .timeLimit(.minutes(1)))
    func tasksRunBetweenCommits() async throws {
        try await withStore { store in
            let vm = try await store.createSet(token: "vm", quota: 1000)
            // A task run inside the open transaction would make a nested transaction on the
            // writer thread, which traps; run between commits, each write commits alone.
            // The other callers keep operations queued while these run. They are on an executor
            // of their own: on the cooperative pool, which tests waiting for child processes hold
            // while the suite runs, their 160 hops once took over two minutes.
            let others = QueueExecutor(label: "other callers")
            let onWriter = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<4 {
                    group.addTask(executorPreference: others) {
                        for _ in 0..<20 { try await store.free(try await store.allocate(in: vm), in: vm) }
                        return true
                    }
                }
                for _ in 0..<16 {
                    group.addTask(executorPreference: store.writerExecutor) {
                        var all = true
                        for _ in 0..<5 {
                            _ = try await store.allocate(in: vm)
                            let (onWriter, _, _) = try Self.synchronousCalls(store, vm)
                            all = all && onWriter
                        }
                        return all
                    }
                }
                return try await group.reduce(true) { $0 && $1 }
            }
            #expect(onWriter)
            #expect(try store.set(vm).allocated == 160)
        }
    }

    @Test("No thread for the writer when a task prefers it: the task goes on elsewhere, and its next store call starts the writer")
    func threadStartFails() async throws {
        try await withStore { store in
            // A synchronous write commits on the calling thread: the writer has not started.
            let vm = try { () throws -> SetID in try store.createSet(token: "vm", quota: 8) }()
            let (plan, result) = await SyscallFaults.failing([SyscallFaults.Fault(.threadStart, errno: EAGAIN)]) {
                try await Task(executorPreference: store.writerExecutor) { () async throws -> (Bool, Bool, IOASID) in
                    let before = store.onWriterThread
                    let id = try await store.allocate(in: vm)
                    return (before, store.onWriterThread, id)
                }.value
            }
            #expect(plan.injected == 1)
            let (before, after, id) = try result.get()
            #expect(!before, "the task ran although no writer thread could start")
            #expect(after, "the allocation started the writer, which resumed the task")
            #expect(try store.findSet(id) == vm)
        }
    }

    /// A synchronous write and read (an async context would pick the async `write`).
    private static func synchronousCalls(_ store: IOASIDStore, _ vm: SetID) throws -> (Bool, IOASID, SetID) {
        let onWriter = store.onWriterThread
        let id = try store.write { tx in try tx.allocate(in: vm) }
        let owner = try store.read { tx in try tx.findSet(id) }
        return (onWriter, id, owner)
    }

    @Test("A task that still prefers the executor of a released store runs to its end", .timeLimit(.minutes(1)))
    func executorOutlivesTheStore() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        // Only the task holds the executor: it sleeps while the store is released and its
        // writer thread ends, and is resumed on the global executor, no writer thread
        // started again for it.
        let sleeper: Task<Int, any Error>
        do {
            let store = try IOASIDStore(path: dir.child("store"))
            let vm = try await store.createSet(token: "vm", quota: 10)
            _ = try await store.allocate(in: vm)
            sleeper = Task(executorPreference: store.writerExecutor) {
                #expect(Self.threadName() == "ioasid-writer")
                try await Task.sleep(for: .milliseconds(200))
                // The thread ends as soon as it is stopped and idle; a slow machine gets more time.
                for _ in 0..<50 where Self.threadName() == "ioasid-writer" { try await Task.sleep(for: .milliseconds(100)) }
                #expect(Self.threadName() != "ioasid-writer")
                return 7
            }
        }
        #expect(try await sleeper.value == 7)
        // The caller keeps the executor: two tasks later, each after the thread ended.
        let executor: any TaskExecutor
        do {
            let store = try IOASIDStore(path: dir.child("store"))
            let vm = try await store.createSet(token: "vm2", quota: 10)
            executor = store.writerExecutor
            _ = try await Task(executorPreference: executor) { try await store.allocate(in: vm) }.value
        }
        try await Task.sleep(for: .milliseconds(100))
        var tries = 0
        while tries < 50, await Task(executorPreference: executor, operation: { Self.threadName() }).value == "ioasid-writer" {
            tries += 1
            try await Task.sleep(for: .milliseconds(100))
        }
        let first = await Task(executorPreference: executor) { 41 }.value
        let second = await Task(executorPreference: executor) { () async -> Int in
            await Task.yield()
            return Self.threadName() == "ioasid-writer" ? 0 : first + 1
        }.value
        #expect(second == 42)
    }

    /// The calling thread's name (`ioasid-writer` on a store's writer thread), from `/proc`.
    static func threadName() -> String {
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return name.trimmingCharacters(in: .newlines)
    }
}
