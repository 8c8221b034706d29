import Foundation
import IOASIDStore
import IOASIDTestSupport
import LMDB
import Testing

/// An operation that breaks the check-before-write rule on purpose: it
/// allocates (writing), then throws a refusal.
extension WriteTransaction {
    func brokenAllocate(in set: SetID) throws -> IOASID {
        try operation {
            _ = try allocate(in: set)
            throw IOASIDError(.quotaExceeded, "deliberately broken: refused after writing")
        }
    }
}

@Suite("API safety: borrowed transactions, misuse traps, check-before-write", .serialized)
struct APISafetyTests {
    // MARK: Transactions cannot escape

    /// Type-checks `snippet` (in a function that has `store: IOASIDStore`)
    /// against the modules of this build; returns the compiler's status and output.
    static func compile(_ snippet: String) throws -> (status: Int32, output: String) {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let source = dir.child("snippet.swift")
        try """
            import IOASIDStore
            func snippet(store: IOASIDStore) throws {
            \(snippet)
            }
            """.write(toFile: source, atomically: true, encoding: .utf8)
        let result = try SwiftSnippet.check(file: source)
        return (result.status, result.stdout + result.stderr)
    }

    @Test("A snippet that uses a transaction inside its closure compiles (the control)")
    func controlCompiles() throws {
        let result = try Self.compile("""
            let capacity = try store.read { tx in try tx.capacity() }
            _ = capacity
            try store.write { tx in _ = try tx.createSet(token: "t", quota: 1) }
            """)
        #expect(result.status == 0, "\(result.output)")
    }

    @Test(
        "Returning, storing or capturing a transaction does not compile",
        arguments: [
            ("let t = try store.read { tx in return tx }", "conform to 'Copyable'"),
            ("var saved: ReadTransaction? = nil; try store.read { tx in saved = tx }; _ = saved", "consum"),
            ("try store.write { tx in let copy = tx; _ = copy }", "cannot be consumed"),
            ("let t = try store.read { $0 }; _ = try t.capacity()", "has no member 'capacity'"),
        ]
    )
    func escapesDoNotCompile(snippet: String, diagnostic: String) throws {
        let result = try Self.compile(snippet)
        #expect(result.status != 0, "the escape compiled: \(snippet)")
        #expect(result.output.contains(diagnostic), "\(result.output)")
    }

    @Test("Capturing a transaction in an escaping closure does not compile")
    func escapingCaptureDoesNotCompile() throws {
        // Swift 6.3.1's move checker rejects this by crashing (signal 11) rather
        // than with a diagnostic; either way the program cannot be built.
        let result = try Self.compile("var later: (() -> Void)? = nil; try store.read { tx in later = { _ = try? tx.capacity() } }; later?()")
        #expect(result.status != 0, "the capture compiled")
    }

    // MARK: Misuse traps

    @Test("A write inside a write traps with a message instead of deadlocking")
    func nestedWriteTraps() async throws {
        // The child traps, so it cannot remove a directory of its own: the parent's goes when the test ends.
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { [path = path as String] in
            let store = try IOASIDStore(path: path)
            try store.write { _ in try store.write { tx in _ = try tx.createSet(token: "inner", quota: 1) } }
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("nested transaction"), "\(stderr)")
    }

    @Test("A read inside a read, and a one-call method inside a write, trap too")
    func nestedReadTraps() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (first, second) = (dir.child("first"), dir.child("second"))
        let reads = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { [first = first as String] in
            let store = try IOASIDStore(path: first)
            try store.read { _ in _ = try store.capacity() }
        }
        let writes = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { [second = second as String] in
            let store = try IOASIDStore(path: second)
            try store.write { _ in _ = try store.status() }
        }
        // Trapped for nesting (not failed for another reason, such as the store not opening).
        for result in [reads, writes] {
            let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            #expect(stderr.contains("nested transaction"), "\(stderr)")
        }
    }

    @Test("Transactions on two different stores may nest")
    func twoStoresNest() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let a = try IOASIDStore(path: dir.child("a"))
        let b = try IOASIDStore(path: dir.child("b"))
        let set = try a.write { tx in try b.read { other in try tx.createSet(token: "from-b", quota: try other.capacity() / 4) } }
        #expect(try a.set(set).quota == (1 << 20) / 4)
    }

    @Test("After fork(), the child's use of the parent's store traps; reopening the path gives it its own")
    func forkedChild() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        _ = try IOASIDStore(path: path)
        let reused = try CLI.run(["fork", path, "reuse"], product: "ioasid-worker")
        #expect(reused.status == 0, "\(reused.stderr)")
        #expect(reused.out == "child signal 4" || reused.out == "child signal 5", "\(reused.stdout)")
        #expect(reused.stderr.contains("fork()"), "\(reused.stderr)")
        let reopened = try CLI.run(["fork", path, "reopen"], product: "ioasid-worker")
        #expect(reopened.status == 0, "\(reopened.stderr)")
        #expect(reopened.out == "child exit 0", "\(reopened.stdout)")
    }

    // MARK: Check before write

    @Test("An operation that writes and then refuses is rolled back, in a sync write that catches it")
    func brokenOperationRollsBack() throws {
        IOASIDStore.assertOnBrokenOperations = false
        defer { IOASIDStore.assertOnBrokenOperations = true }
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            let before = try store.rawDump()
            var caught: IOASIDError?
            expectError(.internalError) {
                try store.write { tx in
                    do { _ = try tx.brokenAllocate(in: vm) } catch let error as IOASIDError { caught = error }
                    _ = try tx.allocate(in: vm)  // the transaction goes on, but must not commit
                }
            }
            #expect(caught?.code == .internalError)
            #expect((caught?.cause as? IOASIDError)?.code == .quotaExceeded)
            #expect(try store.rawDump() == before)
        }
    }

    @Test("expectRefusal fails on an operation that writes before refusing, and passes on a real refusal")
    func expectRefusalCanFail() throws {
        IOASIDStore.assertOnBrokenOperations = false
        defer { IOASIDStore.assertOnBrokenOperations = true }
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 1)
            #expect(throws: SupportCheckFailed.self) {
                try expectRefusal(.quotaExceeded, in: store) { tx in try tx.brokenAllocate(in: vm) }
            }
            _ = try store.allocate(in: vm)
            try expectRefusal(.quotaExceeded, in: store) { tx in try tx.allocate(in: vm) }
            // And the check notices an operation that succeeds where a refusal was expected.
            #expect(throws: SupportCheckFailed.self) {
                try expectRefusal(.quotaExceeded, in: store) { tx in try tx.createSet(token: "other", quota: 1) }
            }
        }
    }

    @Test("In a group commit, a broken operation fails alone and nothing of it is committed")
    func brokenOperationInGroup() async throws {
        IOASIDStore.assertOnBrokenOperations = false
        defer { IOASIDStore.assertOnBrokenOperations = true }
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        let store = try IOASIDStore(path: path)
        let vm = try await store.createSet(token: "vm", quota: 1000)
        let outcomes = await withTaskGroup(of: Result<IOASID, IOASIDError>.self) { group in
            for i in 0..<32 {
                group.addTask {
                    do {
                        if i == 7 { return .success(try await store.submit { tx in try tx.brokenAllocate(in: vm) }) }
                        return .success(try await store.allocate(in: vm))
                    } catch let error as IOASIDError { return .failure(error) } catch { return .failure(IOASIDError(.storageFailure, "\(error)")) }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let failures: [IOASIDError] = outcomes.compactMap { if case .failure(let e) = $0 { e } else { nil } }
        #expect(failures.map(\.code) == [.internalError])
        #expect(try store.set(vm).allocated == 31)
        try expectClean(store)
    }
}
