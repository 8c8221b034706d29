import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

// Parts of the public API that embedders reach directly: Codable identifiers,
// errors as Foundation shows them, batched event iteration, event filters,
// and the refusals of opens that cannot be honoured.

@Suite("Public API surface")
struct APISurfaceTests {
    @Test("Identifiers encode as bare numbers and decode back; anything else is a decoding error")
    func identifiersCodable() throws {
        let encoded = try JSONEncoder().encode([SetID(7)])
        #expect(String(decoding: encoded, as: UTF8.self) == "[7]")
        #expect(try JSONDecoder().decode([IOASID].self, from: Data("[1,1048575]".utf8)) == [IOASID(1), IOASID(1_048_575)])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([SetID].self, from: Data("[-1]".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([SetID].self, from: Data("[\"7\"]".utf8)) }
    }

    @Test("localizedDescription is the message and its cause, not \"IOASIDError error 1\"")
    func localizedDescription() throws {
        try withStore { store in
            do {
                _ = try store.find(IOASID(99), in: SetID(1))
                Issue.record("found an ID that was never allocated")
            } catch let error as IOASIDError {
                #expect(error.localizedDescription == error.message)
                #expect(error.localizedDescription.contains("99"))
                #expect(!error.location.description.isEmpty && error.location.description.contains(":"))
            }
        }
        let wrapped = IOASIDError(.storageFailure, "cannot write x", cause: CocoaError(.fileWriteOutOfSpace))
        #expect(wrapped.localizedDescription.hasPrefix("cannot write x ("))
    }

    @Test("A filter takes the sets and kinds it names; store-wide events only without a set filter")
    func filterMatches() {
        let all = EventFilter.all
        #expect(all.matches(.alloc, set: SetID(3)) && all.matches(.subscriberLapsed, set: nil))
        let some = EventFilter(sets: [SetID(3)], kinds: [.alloc, .free])
        #expect(some.matches(.alloc, set: SetID(3)))
        #expect(!some.matches(.alloc, set: SetID(4)))
        #expect(!some.matches(.bind, set: SetID(3)))
        #expect(!some.matches(.alloc, set: nil))
        #expect(EventFilter(kinds: [.subscriberLapsed]).matches(.subscriberLapsed, set: nil))
    }

    @Test("nextBatch hands out what is committed, at most `limit`, in order, and resumes after it")
    func nextBatch() async throws {
        try await withStore { store in
            try store.subscribe("batcher", filter: EventFilter(kinds: [.alloc]))
            let set = try await store.createSet(token: "vm:batch", quota: 16)
            for _ in 0..<5 { _ = try await store.allocate(in: set) }
            var iterator = store.events(for: "batcher").makeAsyncIterator()
            let first = try #require(try await iterator.nextBatch(limit: 3))
            #expect(first.map(\.kind) == [.alloc, .alloc, .alloc])
            let rest = try #require(try await iterator.nextBatch(limit: 10))
            #expect(rest.count == 2)
            #expect(zip(first + rest, (first + rest).dropFirst()).allSatisfy { $0.sequence < $1.sequence })
            #expect((first + rest).compactMap(\.id) == (1...5).map { IOASID($0) })
            try await store.acknowledge("batcher", through: try #require(rest.last).sequence)
        }
    }

    @Test("A store open read-only in this process cannot also be opened for writing")
    func readOnlyThenWritable() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        _ = try IOASIDStore(path: path)
        var readOnly = IOASIDStore.Options()
        readOnly.readOnly = true
        let reader = try IOASIDStore(path: path, options: readOnly)
        do {
            _ = try IOASIDStore(path: path)
            Issue.record("opened for writing a store that is open read-only")
        } catch {
            #expect(error.code == .readOnly && error.message.contains("already open read-only"), "\(error)")
        }
        #expect(try reader.status().sets.count == 1)
    }

    @Test("A store of an old schema cannot be opened read-only (it needs a migration) and is left as it was")
    func readOnlyOldSchema() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = try loadFixtureFiles("schema-v3", into: dir)
        let before = try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb"))
        var readOnly = IOASIDStore.Options()
        readOnly.readOnly = true
        readOnly.creation = .openExisting
        do {
            _ = try IOASIDStore(path: path, options: readOnly)
            Issue.record("opened a schema-3 store read-only")
        } catch {
            #expect(error.code == .readOnly && error.message.contains("needs migrating"), "\(error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb")) == before)
    }
    @Test("The async one-call operations commit through the writer: adjustQuota, freeSet, renew")
    func asyncOperations() async throws {
        try await withStore { store in
            let set = try await store.createSet(token: "vm:async", quota: 4)
            try await store.adjustQuota(of: set, to: 9)
            #expect(try store.set(set).quota == 9)
            for _ in 0..<3 { _ = try await store.allocate(in: set) }
            let freed = try await store.freeSet(set, destroy: false)
            #expect(freed.freed.count == 3, "\(freed)")
            #expect(try store.set(set).allocated == 0)
            let leased = try store.createSet(token: "vm:leased", quota: 1, owner: SetOwner(lease: .seconds(60)))
            try await store.renew(leased)
            #expect(try store.set(leased).quota == 1)
        }
    }

    @Test("reclaimed(_:) on a cancelled task returns false (not reclaimed) instead of waiting")
    func reclaimedCancelled() async throws {
        try await withStore { store in
            try store.subscribe("holder")
            let set = try await store.createSet(token: "vm:wait", quota: 2)
            let id = try await store.allocate(in: set)
            #expect(try await store.free(id, in: set))
            #expect(try store.find(id).state == .freePending, "a gating subscriber holds it back")
            // A timeout far beyond the bound below: a wait that ignored cancellation
            // would end by it (also returning false), too late.
            let started = ContinuousClock.now
            let waiting = Task { try await store.reclaimed(id, timeout: .seconds(60), pollInterval: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(50))
            waiting.cancel()
            #expect(try await waiting.value == false)
            #expect(ContinuousClock.now - started < .seconds(20), "the cancelled wait returned at once")
        }
    }

    @Test("A new store's options are checked: each refusal is invalidArgument and leaves nothing at the path", arguments: [
        ("capacity 1", UInt32(1), UInt32(1), UInt32(0)), ("system quota 0", 100, 0, 0), ("system quota = capacity", 100, 100, 0),
        ("private data over the limit", 100, 10, IOASIDStore.largestDataSizeLimit + 1),
    ])
    func badOptions(name: String, capacity: UInt32, systemQuota: UInt32, dataLimit: UInt32) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        var options = IOASIDStore.Options()
        options.capacity = capacity
        options.systemQuota = systemQuota
        if dataLimit > 0 { options.maximumDataSize = dataLimit }
        expectError(.invalidArgument) { try IOASIDStore(path: dir.child("store"), options: options) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == [], "\(name): something was left")
    }

    @Test("Opens that cannot be honoured: an empty path, createNew on a store, another durability in this process, a write to a read-only open")
    func refusedOpens() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        expectError(.invalidArgument) { try IOASIDStore(path: "") }
        expectError(.invalidArgument) { try IOASIDStore.checkFiles(at: "") }
        let store = try IOASIDStore(path: path)
        var createNew = IOASIDStore.Options()
        createNew.creation = .createNew
        expectError(.alreadyInitialized) { try IOASIDStore(path: path, options: createNew) }
        var relaxed = IOASIDStore.Options()
        relaxed.durability = .relaxed
        expectError(.invalidArgument) { try IOASIDStore(path: path, options: relaxed) }
        var readOnly = IOASIDStore.Options()
        readOnly.readOnly = true
        let other = dir.child("other")
        _ = try IOASIDStore(path: other)
        let reader = try IOASIDStore(path: other, options: readOnly)
        let before = try reader.rawDump()
        expectError(.readOnly) { try reader.write { tx in _ = try tx.createSet(token: "vm:no", quota: 1) } }
        expectError(.readOnly) { try reader.createSet(token: "vm:no", quota: 1) }
        #expect(try reader.rawDump() == before)
        #expect(try store.status().sets.count == 1)
    }
    @Test("ids(in:) with a limit of 0, or after the highest possible ID, is empty")
    func idsEdges() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm:ids", quota: 4)
            for _ in 0..<3 { _ = try store.allocate(in: vm) }
            #expect(try store.ids(in: vm, limit: 0) == [])
            #expect(try store.ids(in: vm, after: IOASID(.max)) == [])
            #expect(try store.ids(in: vm, after: 1, limit: 1) == [2])
        }
    }

    @Test("Bad arguments are refused with a typed error before anything is written: oversized data, data for a freed ID, zero lag, age and lease limits, empty or taken destinations")
    func badArguments() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try withStore(capacity: 1000, systemQuota: 100) { store in
            try store.subscribe("kvm")
            let vm = try store.createSet(token: "vm:args", quota: 4)
            let id = try store.allocate(in: vm)
            #expect(try store.free(id, in: vm))
            #expect(try store.find(id).state == .freePending, "kvm has not seen its FREE")
            let big = [UInt8](repeating: 1, count: IOASIDStore.defaultMaximumDataSize + 1)
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.allocate(in: vm, data: big) }
            try expectRefusal(.idFreePending, in: store) { tx in try tx.setData([1], for: id, in: vm) }
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.subscribe("lag", options: SubscriptionOptions(maxLag: 0)) }
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.subscribe("age", options: SubscriptionOptions(maxAge: .zero)) }
            try expectRefusal(.invalidArgument, in: store) { tx in try tx.createSet(token: "vm:lease", quota: 1, owner: SetOwner(lease: .zero)) }
            _ = try store.allocate(in: .system, range: 900...900)
            try expectRefusal(.capacityInUse, in: store) { tx in try tx.setCapacity(800) }
            let before = try store.rawDump()
            try store.setCapacity(1000)  // the capacity it has: no change, no CAPACITY event
            #expect(try store.rawDump() == before)
            let taken = dir.child("taken"), file = dir.child("file")
            try FileManager.default.createDirectory(atPath: taken, withIntermediateDirectories: false)
            #expect(FileManager.default.createFile(atPath: file, contents: Data("keep\n".utf8)))
            let tree = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
            expectError(.invalidArgument) { try store.backup(to: "") }
            expectError(.invalidArgument) { try store.backup(to: taken) }
            expectError(.invalidArgument) { try store.backup(to: file, replacing: true) }
            expectError(.invalidArgument) { try store.exportSet(vm, toFile: "") }
            expectError(.invalidArgument) { try store.exportSet(vm, toFile: file) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == tree)
            #expect(try FileManager.default.contentsOfDirectory(atPath: taken) == [])
            #expect(try String(contentsOfFile: file, encoding: .utf8) == "keep\n")
            #expect(try store.rawDump() == before)
            #expect(try store.set(vm).isFrozen == false, "a refused export leaves the set unfrozen")
        }
    }

    @Test("A failed export says, as a field and not only in words, whether it leaves the set frozen")
    func failedExportNamesTheSetLeftFrozen() throws {
        try withStore(capacity: 1000, systemQuota: 100) { store in
            let vm = try store.createSet(token: "vm:export", quota: 4)
            _ = try store.allocate(in: vm)
            struct Refused: Error {}
            func failedExport() -> IOASIDError? {
                let result = Result { () throws(IOASIDError) in
                    try store.exportSet(vm, to: { _ in throw IOASIDError(.storageFailure, "sink refused", cause: Refused()) })
                }
                guard case .failure(let error) = result else { return nil }
                return error
            }
            // A live set: the export unfreezes it again, and says nothing is left frozen.
            let live = failedExport()
            #expect(live?.code == .storageFailure && live?.setLeftFrozen == nil, "\(String(describing: live))")
            #expect(try store.set(vm).isFrozen == false)
            // A set frozen before (a migration in progress): it stays frozen, and the error names it.
            _ = try store.exportSet(vm, to: { _ in })
            let frozen = failedExport()
            #expect(frozen?.code == .storageFailure && frozen?.setLeftFrozen == vm, "\(String(describing: frozen))")
            #expect(frozen?.cause is Refused)
            #expect(try store.set(vm).isFrozen)
            // Frozen before, and another thread ends the migration while the export reads:
            // the set is not frozen any more, and the error does not name it.
            let ended = Result { () throws(IOASIDError) in
                try store.exportSet(vm, to: { _ in
                    let done = DispatchSemaphore(value: 0)
                    let aborting = Thread {
                        try? store.abortMigration(of: vm)
                        done.signal()
                    }
                    aborting.start()
                    done.wait()
                    throw IOASIDError(.storageFailure, "sink refused")
                })
            }
            guard case .failure(let error) = ended else { Issue.record("the export did not fail"); return }
            #expect(error.setLeftFrozen == nil && error.message.contains("is not frozen"), "\(error)")
            #expect(try store.set(vm).isFrozen == false)
        }
    }
}
