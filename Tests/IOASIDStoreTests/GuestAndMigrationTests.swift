import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

@Suite("Guest IDs")
struct GuestIDTests {
    @Test("Two VMs use the same guest ID for different host IDs; a duplicate within a set is refused")
    func twoVMsSameGuest() throws {
        try withStore { store in
            try store.subscribe("kvm")
            let a = try store.createSet(token: "vm:a", quota: 10)
            let b = try store.createSet(token: "vm:b", quota: 10)
            let hostA = try store.allocate(in: a, guest: 101)
            let hostB = try store.allocate(in: b)
            try store.attach(guest: 101, to: hostB, in: b)
            #expect(hostA != hostB)
            #expect(try store.hostID(forGuest: 101, in: a) == hostA)
            #expect(try store.hostID(forGuest: 101, in: b) == hostB)
            #expect(try store.guestID(for: hostB) == 101)
            let other = try store.allocate(in: a)
            try expectRefusal(.duplicateGuest, in: store) { tx in try tx.attach(guest: 101, to: other, in: a) }
            try expectRefusal(.duplicateGuest, in: store) { tx in try tx.allocate(in: a, guest: 101) }
            try expectRefusal(.guestAlreadyAttached, in: store) { tx in try tx.attach(guest: 5, to: hostA, in: a) }
            try expectRefusal(.wrongSet, in: store) { tx in try tx.attach(guest: 7, to: hostA, in: b) }
            try expectRefusal(.wrongSet, in: store) { tx in try tx.detach(hostA, in: b) }
            expectError(.noSuchGuest) { try store.hostID(forGuest: 999, in: a) }
            #expect(try store.detach(hostB, in: b) == 101)
            try expectRefusal(.noSuchGuest, in: store) { tx in try tx.detach(hostB, in: b) }
            let kinds = try store.pendingEvents(for: "kvm").map(\.kind)
            #expect(kinds.filter { $0 == .bind }.count == 2)
            #expect(kinds.filter { $0 == .unbind }.count == 1)
        }
    }

    @Test("Freeing a bound ID detaches its guest ID first (UNBIND, then FREE)")
    func freeUnbinds() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            let id = try store.allocate(in: vm, guest: 7)
            try store.subscribe("s")
            try store.free(id, in: vm)
            #expect(try store.pendingEvents(for: "s").map(\.kind) == [.unbind, .free])
            expectError(.noSuchGuest) { try store.hostID(forGuest: 7, in: vm) }
            try store.acknowledge("s", through: 2)
            _ = try store.allocate(in: vm, guest: 7)
        }
    }

    @Test("A frozen set refuses changes but answers lookups")
    func frozen() throws {
        try withStore { store in
            let vm = try store.createSet(token: "vm", quota: 10)
            let id = try store.allocate(in: vm, guest: 1)
            let other = try store.allocate(in: vm)
            try store.write { try $0.freeze(vm) }
            try expectRefusal(.setFrozen, in: store) { tx in try tx.allocate(in: vm) }
            try expectRefusal(.setFrozen, in: store) { tx in try tx.free(id, in: vm) }
            try expectRefusal(.setFrozen, in: store) { tx in try tx.attach(guest: 2, to: other, in: vm) }
            try expectRefusal(.setFrozen, in: store) { tx in try tx.detach(id, in: vm) }
            try expectRefusal(.setFrozen, in: store) { tx in try tx.adjustQuota(of: vm, to: 20) }
            try expectRefusal(.setFrozen, in: store) { tx in try tx.freeSet(vm, destroy: true) }
            try expectRefusal(.systemSetProtected, in: store) { tx in try tx.freeze(.system) }
            #expect(try store.find(id, in: vm).guest == 1)
            #expect(try store.hostID(forGuest: 1, in: vm) == id)
            try store.abortMigration(of: vm)
            try expectRefusal(.setNotFrozen, in: store) { tx in try tx.abortMigration(of: vm) }
            _ = try store.allocate(in: vm)
        }
    }
}

/// Exports `set` of `store` into a file and returns its path and bytes.
@Suite("Live migration")
struct MigrationTests {
    @Test("A 100,000-ID set round-trips: guest IDs and data identical, collisions remapped and reported")
    func roundTrip() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        var options = IOASIDStore.Options()
        options.capacity = 1 << 18
        let source = try IOASIDStore(path: dir.child("source"), options: options)
        let destination = try IOASIDStore(path: dir.child("destination"), options: options)
        let count = 100_000
        let vm = try source.createSet(token: "vm:big", quota: UInt32(count))
        try source.write { tx in
            for i in 0..<UInt32(count) {
                // Guest IDs in reverse order, data on every third ID.
                _ = try tx.allocate(in: vm, data: i % 3 == 0 ? withUnsafeBytes(of: i.bigEndian, Array.init) : [], guest: 500_000 - i)
            }
        }
        // The destination already uses some of the source's host IDs.
        try destination.write { tx in
            for id: UInt32 in [1, 2, 3, 50_000, 99_999, 100_000] { _ = try tx.allocate(in: .system, range: id...id) }
        }
        try destination.subscribe("iommu")
        let (path, _) = try exportToFile(source, vm, in: dir)
        let result = try destination.importSet(from: path)
        #expect(result.imported == count)
        #expect(Set(result.remapped.map(\.from.rawValue)) == [1, 2, 3, 50_000, 99_999, 100_000])
        #expect(result.remapped.allSatisfy { $0.to.rawValue > 100_000 })
        let moved = result.set
        #expect(try destination.set(moved).allocated == UInt32(count))
        #expect(try destination.set(moved).quota == UInt32(count))
        // Every guest ID and datum identical; lookups by guest give the destination's host IDs.
        let remaps = Dictionary(uniqueKeysWithValues: result.remapped.map { ($0.from.rawValue, $0.to) })
        try source.read { src in
            try destination.read { dst in
                try src.forEachID(in: vm) { id in
                    let before = try src.find(id, in: vm)
                    let host = remaps[id.rawValue] ?? id
                    let after = try dst.find(host, in: moved)
                    #expect(after.guest == before.guest)
                    #expect(after.data == before.data)
                    #expect(try dst.hostID(forGuest: before.guest!, in: moved) == host)
                    return true
                }
            }
        }
        let kinds = try destination.pendingEvents(for: "iommu").map(\.kind)
        #expect(kinds.first == .setCreate)
        #expect(kinds.filter { $0 == .alloc }.count == count)
        #expect(kinds.filter { $0 == .bind }.count == count)
        // Import is idempotent: the same export again is refused and changes nothing.
        try expectStoreRefusal(.exportAlreadyImported, in: destination) { try destination.importSet(from: path, token: "vm:other") }
        // Complete at the source: the set is freed and destroyed.
        try source.completeMigration(of: vm)
        expectError(.noSuchSet) { try source.set(vm) }
        #expect(try source.status().allocated == 0)
    }

    /// A small export (1: data and guest 101; 2: guest 102; 3: data) and a
    /// destination that already holds some state.
    struct Fixture {
        static var options: IOASIDStore.Options {
            var options = IOASIDStore.Options()
            options.capacity = 4096
            options.systemQuota = 100
            return options
        }

        let dir: TemporaryDirectory
        let destination: IOASIDStore
        let path: String
        let bytes: Data

        init() throws {
            dir = try TemporaryDirectory()
            let source = try IOASIDStore(path: dir.child("source"), options: Self.options)
            let vm = try source.createSet(token: "vm:small", quota: 20)
            _ = try source.allocate(in: vm, data: [0xca, 0xfe], guest: 101)
            _ = try source.allocate(in: vm, guest: 102)
            _ = try source.allocate(in: vm, data: [1])
            (path, bytes) = try exportToFile(source, vm, in: dir)
            destination = try Self.destination(in: dir)
        }

        /// A destination store that already holds an ID and a subscriber.
        static func destination(in dir: TemporaryDirectory) throws -> IOASIDStore {
            let store = try IOASIDStore(path: dir.child("destination"), options: options)
            _ = try store.allocate(in: .system)
            try store.subscribe("s")
            return store
        }

        /// Writes `data` to a file beside the export and returns its path.
        func write(_ data: Data) throws -> String {
            let file = dir.child("mutated.jsonl")
            try data.write(to: URL(fileURLWithPath: file))
            return file
        }

        func importing(_ data: Data) throws {
            _ = try destination.importSet(from: write(data))
        }
    }

    @Test("Flipping any byte of an export is refused and changes nothing")
    func everyByteFlip() throws {
        let f = try Fixture()
        defer { f.dir.cleanup() }
        let before = try f.destination.rawDump()
        for offset in 0..<f.bytes.count {
            var mutated = f.bytes
            mutated[offset] ^= 0x01
            do {
                try f.importing(mutated)
                Issue.record("flipping byte \(offset) was accepted")
            } catch let error as IOASIDError {
                #expect(error.category == .refused, "byte \(offset): \(error)")
            }
        }
        #expect(try f.destination.rawDump() == before)
        _ = try f.destination.importSet(from: f.path)  // the original still imports
    }

    @Test("Truncating an export at any point is refused and changes nothing")
    func everyTruncation() throws {
        let f = try Fixture()
        defer { f.dir.cleanup() }
        let before = try f.destination.rawDump()
        for length in 0..<f.bytes.count {
            do {
                try f.importing(f.bytes.prefix(length))
                Issue.record("a truncation to \(length) bytes was accepted")
            } catch let error as IOASIDError {
                #expect(
                    [.exportTruncated, .exportMalformed, .exportChecksumMismatch].contains(error.code),
                    "length \(length): \(error)"
                )
            }
        }
        #expect(try f.destination.rawDump() == before)
    }

    @Test("Each refusal has its own code", arguments: ["version", "format", "checksum", "truncated", "token", "quota", "twice"])
    func refusals(kind: String) throws {
        let f = try Fixture()
        defer { f.dir.cleanup() }
        var text = String(decoding: f.bytes, as: UTF8.self)
        let expected: IOASIDError.Code
        switch kind {
        case "version":
            text = text.replacingOccurrences(of: "\"version\":1", with: "\"version\":2")
            expected = .exportUnsupported
        case "format":
            text = text.replacingOccurrences(of: "ioasid-set-export", with: "something-else")
            expected = .exportUnsupported
        case "checksum":
            text = text.replacingOccurrences(of: "\"guest\":102", with: "\"guest\":103")
            expected = .exportChecksumMismatch
        case "truncated":
            text = text.split(separator: "\n").dropLast().joined(separator: "\n") + "\n"
            expected = .exportTruncated
        case "token":
            _ = try f.destination.createSet(token: "vm:small", quota: 1)
            expected = .duplicateToken
        case "quota":
            _ = try f.destination.createSet(token: "vm:hog", quota: 4095 - 100 - 10)
            expected = .capacityExhausted
        default:
            _ = try f.destination.importSet(from: f.path)
            expected = .exportAlreadyImported
        }
        let before = try f.destination.rawDump()
        expectError(expected) { try f.importing(Data(text.utf8)) }
        #expect(try f.destination.rawDump() == before)
    }

    @Test("Import keeps the IDs that are free here and remaps the rest to the lowest free ones: IDs beyond the capacity, past the last free extent, and whole small extents")
    func importRemapping() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        var sourceOptions = IOASIDStore.Options()
        sourceOptions.capacity = 1000
        sourceOptions.systemQuota = 100
        let source = try IOASIDStore(path: dir.child("source"), options: sourceOptions)
        let vm = try source.createSet(token: "vm:remap", quota: 20)
        for _ in 1...5 { _ = try source.allocate(in: vm) }  // 1…5
        for _ in 1...3 { _ = try source.allocate(in: vm, range: 900...999) }  // 900…902
        let (path, _) = try exportToFile(source, vm, in: dir)
        // Here: 1…10 and 900 (the highest ID) are taken, then 2, 3, 7 and 8 freed:
        // the free extents are 2…3, 7…8 and 11…899.
        var options = IOASIDStore.Options()
        options.capacity = 901
        options.systemQuota = 100
        let destination = try IOASIDStore(path: dir.child("destination"), options: options)
        for _ in 1...10 { _ = try destination.allocate(in: .system) }
        _ = try destination.allocate(in: .system, range: 900...900)
        for id: IOASID in [2, 3, 7, 8] { #expect(try destination.free(id, in: .system)) }
        let result = try destination.importSet(from: path)
        // 2 and 3 are kept; 1, 4, 5 (taken here), 900 (taken, past the last extent) and
        // 901, 902 (beyond the capacity) take the lowest free IDs: all of 7…8, then 11…14.
        #expect(try destination.ids(in: result.set) == [2, 3, 7, 8, 11, 12, 13, 14])
        #expect(result.remapped.map(\.from) == [1, 4, 5, 900, 901, 902])
        #expect(result.remapped.map(\.to) == [7, 8, 11, 12, 13, 14])
        #expect(try destination.verify().isClean)
    }

    @Test("Allocations from two free extents in one transaction: the deferred start of the first is written before the second moves")
    func twoExtentsInOneTransaction() throws {
        try withStore(capacity: 1000, systemQuota: 100) { store in
            let vm = try store.createSet(token: "vm:two", quota: 10)
            _ = try store.allocate(in: .system, range: 500...500)  // extents 1…499 and 501…999
            let taken = try store.write { tx in
                [try tx.allocate(in: vm), try tx.allocate(in: .system, range: 501...600), try tx.allocate(in: vm)]
            }
            #expect(taken == [1, 501, 2])
            #expect(try store.allocate(in: vm) == 3)
            #expect(try store.allocate(in: .system, range: 501...600) == 502)
            #expect(try store.verify().isClean)
        }
    }

    @Test("export | import through the CLI, then complete at the source")
    func cliPipe() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let a = dir.child("a"), b = dir.child("b")
        _ = try CLI.run(["--store", a, "init", "--capacity", "4096", "--system-quota", "10"])
        _ = try CLI.run(["--store", b, "init", "--capacity", "4096", "--system-quota", "10"])
        _ = try CLI.run(["--store", a, "set", "create", "--token", "vm:pipe", "--quota", "5"])
        #expect(try CLI.run(["--store", a, "alloc", "--set", "2", "--guest", "101"]).out == "1")
        #expect(try CLI.run(["--store", b, "alloc", "--set", "1"]).out == "1")
        let bin = CLI.path(of: "ioasid")
        let pipe = try CLI.run(["-c", "'\(bin)' --store '\(a)' migrate export --set 2 | '\(bin)' --store '\(b)' migrate import -"], product: "/bin/sh")
        #expect(pipe.status == 0, "\(pipe.stderr)")
        #expect(pipe.out == "2", "plain import prints just the new set's ID")
        #expect(pipe.stderr.contains("remapped 1 → 2 (guest 101)"))
        #expect(try CLI.run(["--store", b, "find", "--set", "2", "--guest", "101"]).out == "2")
        #expect(try CLI.run(["--store", a, "--json", "alloc", "--set", "2"]).errorCode == "setFrozen")
        #expect(try CLI.run(["--store", a, "migrate", "complete", "2"]).status == 0)
        #expect(try CLI.run(["--store", a, "set", "show", "2"]).status == 2)
    }

    @Test("A process killed during import leaves no set or the whole set", .serialized, arguments: [0.1, 0.25, 0.4, 0.6])
    func killedImport(fraction: Double) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let source = try IOASIDStore(path: dir.child("source"))
        let vm = try source.createSet(token: "vm:kill", quota: 50_000)
        try source.write { tx in for i in 0..<UInt32(50_000) { _ = try tx.allocate(in: vm, guest: i) } }
        let (path, _) = try exportToFile(source, vm, in: dir)
        // Time one whole import here and now (the machine's speed and load vary),
        // then kill another at `fraction` of that time, so the kill lands mid-way.
        let timedPath = dir.child("timed")
        do { _ = try IOASIDStore(path: timedPath) }
        let started = ContinuousClock.now
        let timed = try CLI.run(["--store", timedPath, "migrate", "import", path])
        let whole = ContinuousClock.now - started
        #expect(timed.status == 0, "\(timed.stderr)")
        // A second import can run faster than the timed one (the machine's load changes):
        // when it ends before the kill, the next attempt kills at half the delay.
        var delay = (Double(whole.components.seconds) + Double(whole.components.attoseconds) * 1e-18) * fraction
        var killed = false
        for attempt in 0..<4 where !killed {
            let destinationPath = dir.child("destination-\(attempt)")
            do { _ = try IOASIDStore(path: destinationPath) }
            let importer = try CLI.start("ioasid", ["--store", destinationPath, "migrate", "import", path])
            Thread.sleep(forTimeInterval: delay)
            kill(importer.process.processIdentifier, SIGKILL)
            importer.process.waitUntilExit()
            killed = importer.process.terminationReason == .uncaughtSignal
            if !killed { #expect(importer.process.terminationStatus == 0, "an import that was not killed succeeds") }
            // Killed or not, the store holds no set or the whole set.
            let destination = try IOASIDStore(path: destinationPath)
            if let set = try destination.set(withToken: "vm:kill") {
                #expect(set.allocated == 50_000)
            } else {
                #expect(killed, "an import that exited 0 left its set")
                #expect(try destination.status().allocated == 0)
                #expect(try destination.status().sets.count == 1)
            }
            #expect(try destination.verify().isClean)
            delay /= 2
        }
        #expect(killed, "the import (\(whole) in full) ended before the kill at \(fraction) of it, four times")
    }
}

@Suite("Fuzz corpus regressions")
struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/fuzz-corpus").path

    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: corpus)) ?? []).filter { $0.hasSuffix(".jsonl") }.sorted()
    }

    @Test("Every corpus input gets its recorded outcome, and refusals change nothing", arguments: files)
    func replay(file: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        var options = IOASIDStore.Options()
        options.capacity = 4096
        options.systemQuota = 16
        let store = try IOASIDStore(path: dir.child("store"), options: options)
        let name = file.split(separator: "-")
        let before = try store.rawDump()
        if name[0] == "imported" {
            _ = try store.importSet(from: Self.corpus + "/" + file)
            #expect(try store.verify().isClean)
        } else {
            let code = try #require(IOASIDError.Code(name: String(name[0] == "import" ? name[1] : name[0])))
            expectError(code) { try store.importSet(from: Self.corpus + "/" + file) }
            #expect(try store.rawDump() == before)
        }
    }

    @Test("The corpus is there")
    func corpusPresent() {
        #expect(Self.files.count >= 10)
    }
}
