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
}
