import Foundation
import IOASIDStore
import IOASIDTestSupport
import LMDB
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Every file the store writes (backups, exports, new stores, restores, the
// import spool) goes through `SystemFile` and `FileSystem`. These tests make
// each of their system calls fail in turn — a full disk, an I/O error, a
// read-only file system — and check that the operation says what failed, with
// a typed error, and leaves nothing half-made behind: no file at the
// destination, no temporary file beside it, the store as it was.

/// What a directory holds (names only), for "nothing left behind" checks.
private func entries(_ directory: String) -> Set<String> {
    Set((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
}

/// Runs `body` with the `skip`+1-th call at `point` failing with `code`, and
/// expects it to fail with `expected`, with the fault really injected.
private func expectFailure<R>(
    at point: SyscallPoint, skipping skip: Int = 0, errno code: Int32 = EIO, _ expected: IOASIDError.Code,
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> R
) -> IOASIDError? {
    expectFailure([SyscallFaults.Fault(point, errno: code, skip: skip)], expected, sourceLocation: sourceLocation, body)
}

/// ``expectFailure(at:skipping:errno:_:sourceLocation:_:)`` with several faults, each of which must be injected.
private func expectFailure<R>(
    _ faults: [SyscallFaults.Fault], _ expected: IOASIDError.Code,
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> R
) -> IOASIDError? {
    let (plan, result) = SyscallFaults.failing(faults, body)
    let point = faults.map { "\($0.point) #\($0.skip + 1)" }.joined(separator: ", ")
    #expect(plan.injected == faults.count, "not every call of \(point) was made", sourceLocation: sourceLocation)
    switch result {
    case .success:
        Issue.record("succeeded although \(point) failed", sourceLocation: sourceLocation)
        return nil
    case .failure(let error as IOASIDError):
        #expect(error.code == expected, "\(error)", sourceLocation: sourceLocation)
        return error
    case .failure(let error):
        Issue.record("not an IOASIDError: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

// Serialized: each test blocks its thread on many fsyncs, and the suite's tests side by side
// would hold every thread of the 2-core pool the async tests need.
@Suite("System calls that fail", .serialized)
struct SyscallFaultTests {
    /// A store with one set of a few IDs (with data and guests), in `dir`.
    private func makeStore(in dir: TemporaryDirectory) throws -> (IOASIDStore, SetID) {
        let store = try IOASIDStore(path: dir.child("store"))
        let set = try store.createSet(token: "vm:faults", quota: 64)
        for g in UInt32(1)...5 { _ = try store.allocate(in: set, data: [UInt8(g), 0xAB], guest: g) }
        return (store, set)
    }

    /// The set of a new store (with `more` done to it) exported to a file, and a second,
    /// new store beside it to import the file into (it holds only its system set).
    private func exportedForImport(
        in dir: TemporaryDirectory, _ more: (IOASIDStore, SetID) throws -> Void = { _, _ in }
    ) throws -> (path: String, target: IOASIDStore, targetPath: String) {
        let (store, set) = try makeStore(in: dir)
        try more(store, set)
        let path = dir.child("set.export")
        _ = try store.exportSet(set, toFile: path)
        try store.abortMigration(of: set)
        let targetPath = dir.child("target")
        return (path, try IOASIDStore(path: targetPath), targetPath)
    }

    @Test("No thread for the writer: the operation waiting for it fails with storageFailure and changes nothing; the next one starts the writer. No thread for the change watch: watching reports it and a later watch works")
    func threadStartFails() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        _ = try makeStore(in: dir)
        var options = IOASIDStore.Options()
        options.creation = .openExisting
        options.synchronousWritesThroughWriter = true
        let store = try IOASIDStore(path: dir.child("store"), options: options)
        let set = try store.findSet(IOASID(1))
        let before = try store.ids(in: set)
        let error = expectFailure(at: .threadStart, errno: EAGAIN, .storageFailure) { try store.allocate(in: set) }
        #expect(error?.message.contains("writer thread") == true, "\(String(describing: error))")
        #expect(try store.ids(in: set) == before, "nothing allocated")
        // (A synchronous call: the writer runs it, as it runs the service's.)
        let id = try { () throws -> IOASID in try store.allocate(in: set) }()
        #expect(try store.findSet(id) == set, "the writer started for the next operation")
        #expect(try store.ids(in: set).count == before.count + 1, "the failed operation did not run later")

        // The async API, on a store whose writer has not started yet: the caller resumes once, with the error.
        let other = try IOASIDStore(path: dir.child("other"))
        let otherSet = try { () throws -> SetID in try other.createSet(token: "vm:other", quota: 8) }()
        let (asyncPlan, asyncResult) = await SyscallFaults.failing([SyscallFaults.Fault(.threadStart, errno: EAGAIN)]) {
            try await other.allocate(in: otherSet)
        }
        #expect(asyncPlan.injected == 1)
        if case .failure(let error as IOASIDError) = asyncResult {
            #expect(error.code == .storageFailure, "\(error)")
        } else {
            Issue.record("expected storageFailure, got \(asyncResult)")
        }
        let next = try await other.allocate(in: otherSet)
        #expect(try other.ids(in: otherSet) == [next], "only the second operation ran")

        let (plan, watching) = SyscallFaults.failing(.threadStart, with: EAGAIN) { store.watchForCommits() }
        #expect(plan.injected == 1 && (try? watching.get()) == false, "a watch without its thread is not reported as running")
        #expect(store.watchForCommits(), "a later watch starts its thread")
    }

    @Test("A backup whose every step fails in turn leaves no backup and no temporary directory; a retry works")
    func backupSteps() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, _) = try makeStore(in: dir)
        let before = entries(dir.path)
        let destination = dir.child("backup")
        // Every step before the backup is in place: the temporary directory, its
        // data file, LMDB's copy, the size, the file's sync and rename, the
        // directory's sync, the move into place.
        let steps: [(SyscallPoint, Int)] = [
            (.mkdir, 0), (.open, 0), (.copy, 0), (.fstat, 0), (.fsync, 0), (.rename, 0), (.syncDirectory, 0), (.rename, 1),
        ]
        for (point, skip) in steps {
            let error = expectFailure(at: point, skipping: skip, .storageFailure) { try store.backup(to: destination) }
            #expect(error?.message.contains("backup") == true || error?.message.contains("data.mdb") == true, "\(point): \(String(describing: error))")
            #expect(entries(dir.path) == before, "\(point) #\(skip + 1) left \(entries(dir.path).subtracting(before))")
        }
        // A full disk and a read-only file system say so.
        let full = expectFailure(at: .copy, errno: ENOSPC, .storageFailure) { try store.backup(to: destination) }
        #expect(full?.message.contains("the disk is full") == true)
        let readOnly = expectFailure(at: .mkdir, errno: EROFS, .readOnly) { try store.backup(to: destination) }
        #expect(readOnly?.message.contains("read-only") == true)
        #expect(entries(dir.path) == before)

        // The parent's sync after the move: the backup is in place, and the error says it may not be durable yet.
        let late = expectFailure(at: .syncDirectory, skipping: 1, .storageFailure) { try store.backup(to: destination) }
        #expect(late?.message.contains("cannot sync") == true)
        FileSystem.removeDirectory(destination)

        let size = try store.backup(to: destination)
        #expect(size > 0)
        let copy = try IOASIDStore(path: destination)
        #expect(try copy.status().allocated == store.status().allocated)
        try expectClean(store)
    }

    @Test("Replacing a backup: a failed move of the old one keeps it, untouched")
    func backupReplace() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, set) = try makeStore(in: dir)
        let destination = dir.child("backup")
        try store.backup(to: destination)
        let atBackup = try store.status().allocated
        _ = try store.allocate(in: set)
        let before = entries(dir.path)
        // Renames: the data file into the temporary directory (1st), the old backup aside (2nd).
        _ = expectFailure(at: .rename, skipping: 1, .storageFailure) { try store.backup(to: destination, replacing: true) }
        #expect(entries(dir.path) == before)
        let old = try IOASIDStore(path: destination)
        #expect(try old.status().allocated == atBackup)
    }

    @Test("An export to a file that cannot be written, synced or renamed leaves no file and unfreezes the set")
    func exportSteps() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, set) = try makeStore(in: dir)
        let before = entries(dir.path)
        let path = dir.child("set.export")
        for (point, skip, code) in [(SyscallPoint.open, 0, EACCES), (.write, 0, ENOSPC), (.fsync, 0, EIO), (.rename, 0, EIO)] {
            let error = expectFailure(at: point, skipping: skip, errno: code, .storageFailure) {
                _ = try store.exportSet(set, toFile: path)
            }
            #expect(error?.message.contains("unfrozen") == true || point == .open, "\(point): \(String(describing: error))")
            #expect(entries(dir.path) == before, "\(point) left \(entries(dir.path).subtracting(before))")
            #expect(try store.set(set).isFrozen == false, "\(point) left the set frozen")
        }
        let summary = try store.exportSet(set, toFile: path)
        #expect(summary.header.count == 5)
        try expectClean(store)
    }

    @Test("A new store whose directory cannot be made, synced or moved into place leaves nothing")
    func initSteps() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        for (point, skip) in [(SyscallPoint.mkdir, 0), (.syncDirectory, 0), (.rename, 0)] {
            _ = expectFailure(at: point, skipping: skip, .storageFailure) { try IOASIDStore(path: path) }
            #expect(entries(dir.path).isEmpty, "\(point) left \(entries(dir.path))")
        }
        // The parent's sync comes after the store is in place; the store is whole.
        _ = expectFailure(at: .syncDirectory, skipping: 1, .storageFailure) { try IOASIDStore(path: path) }
        let store = try IOASIDStore(path: path)
        try expectClean(store)
    }

    @Test("A restore that cannot write its data file leaves nothing at the destination")
    func restoreSteps() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, _) = try makeStore(in: dir)
        try store.backup(to: dir.child("backup"))
        let before = entries(dir.path)
        let target = dir.child("restored")
        for point in [SyscallPoint.open, .copy, .fsync] {
            _ = expectFailure(at: point, .storageFailure) { try IOASIDStore.restore(from: dir.child("backup"), to: target) }
            #expect(entries(dir.path) == before, "\(point) left \(entries(dir.path).subtracting(before))")
        }
        let restored = try IOASIDStore.restore(from: dir.child("backup"), to: target)
        #expect(try restored.status().allocated == store.status().allocated)
    }

    @Test("An import larger than its memory budget spills to a private file; failing spills and reads import nothing")
    func importSpill() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (path, target, targetPath) = try exportedForImport(in: dir) { store, set in
            for g in UInt32(6)...40 { _ = try store.allocate(in: set, data: Array(repeating: UInt8(g), count: 40), guest: g) }
        }
        let storeEntries = entries(targetPath)

        try ImportSpool.$memoryLimitForTests.withValue(256) {
            // The spool's file (nameless, or named and unlinked at once), its writes, and reading it back.
            // No O_TMPFILE, and no room for the named file either (the 1st open is the input's).
            _ = expectFailure([.init(.openTemporary, errno: EOPNOTSUPP), .init(.open, errno: ENOSPC, skip: 1)], .storageFailure) {
                try target.importSet(from: path)
            }
            _ = expectFailure(at: .write, .storageFailure) { try target.importSet(from: path) }
            _ = expectFailure(at: .seek, .storageFailure) { try target.importSet(from: path) }
            _ = expectFailure(at: .read, skipping: 0, .invalidArgument) { try target.importSet(from: path) }
            #expect(try target.sets().count == 1, "a failed import created a set")
            #expect(entries(targetPath) == storeEntries, "a failed import left a file in the store's directory")

            // Without O_TMPFILE the spool takes a random name, unlinked at once: the import works.
            let (plan, result) = SyscallFaults.failing(.openTemporary, with: EOPNOTSUPP) { try target.importSet(from: path) }
            #expect(plan.injected == 1)
            let imported = try result.get()
            #expect(imported.imported == 40)
            #expect(entries(targetPath) == storeEntries)
        }
        let copy = try #require(try target.set(withToken: "vm:faults"))
        let ids = try target.ids(in: copy.id)
        #expect(ids.count == 40)
        #expect(try target.find(ids[39], in: copy.id).data == Array(repeating: 40, count: 40))
        try expectClean(target)
    }

    @Test("An export file that cannot be opened or read is refused as unreadable, naming it")
    func importUnreadable() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (path, target, _) = try exportedForImport(in: dir)
        let opened = expectFailure(at: .open, errno: EACCES, .invalidArgument) { try target.importSet(from: path) }
        #expect(opened?.message.contains(path) == true)
        let read = expectFailure(at: .read, errno: EIO, .invalidArgument) { try target.importSet(from: path) }
        #expect(read?.message.contains(path) == true)
        #expect(try target.sets().count == 1)
    }

    @Test("A temporary name that is taken is replaced by another; an existing destination is refused unless replacing")
    func temporaryNames() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, set) = try makeStore(in: dir)
        let path = dir.child("set.export")
        // The first temporary name "exists": the writer picks another.
        let (plan, result) = SyscallFaults.failing(.open, with: EEXIST) { try store.exportSet(set, toFile: path) }
        #expect(plan.injected == 1)
        _ = try result.get()
        try store.abortMigration(of: set)
        let exported = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            _ = try store.exportSet(set, toFile: path)
            Issue.record("an export replaced an existing file without being asked to")
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains("exists"), "\(error)")
        }
        #expect(try store.set(set).isFrozen == false)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == exported)
    }

    @Test("An import spool that finds every fallback name taken fails cleanly")
    func spoolNamesTaken() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (path, target, _) = try exportedForImport(in: dir)
        // No O_TMPFILE, then 16 named attempts that all collide (the 1st open is the input's).
        let faults = [SyscallFaults.Fault(.openTemporary, errno: EOPNOTSUPP)] + (1...16).map { SyscallFaults.Fault(.open, errno: EEXIST, skip: $0) }
        ImportSpool.$memoryLimitForTests.withValue(64) {
            let error = expectFailure(faults, .storageFailure) { try target.importSet(from: path) }
            #expect(error?.message.contains("spool") == true, "\(String(describing: error))")
        }
        #expect(try target.sets().count == 1)
    }

    @Test("A store whose directory or files cannot be examined is refused with the reason, and nothing is opened")
    func inspectFailures() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        _ = try makeStore(in: dir)
        let path = dir.child("store")
        let before = entries(path)
        // lstat of the directory (1st), data.mdb (2nd) and lock.mdb (3rd).
        let cases: [(Int, Int32, IOASIDError.Code, String)] = [
            (0, EACCES, .accessDenied, path), (0, EIO, .storageFailure, path),
            (1, EIO, .storageFailure, "data.mdb"), (2, EACCES, .accessDenied, "lock.mdb"),
        ]
        for (skip, code, expected, names) in cases {
            let error = expectFailure(at: .lstat, skipping: skip, errno: code, expected) { try IOASIDStore(path: path) }
            #expect(error?.message.contains("cannot examine") == true && error?.message.contains(names) == true, "\(String(describing: error))")
        }
        #expect(entries(path) == before)
        let store = try IOASIDStore(path: path)
        try expectClean(store)
    }

    @Test("A data file that cannot be examined, opened or read before mapping is refused with the call and errno; nothing is written")
    func dataFileChecks() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        _ = try makeStore(in: dir)
        let path = dir.child("store")
        let before = try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb"))
        // stat of the directory, lstat of data.mdb, lstat again, open, fstat, the first pread.
        let cases: [(Int, Int32, IOASIDError.Code, String)] = [
            (0, EIO, .storageFailure, "stat"), (1, EACCES, .accessDenied, "lstat"), (2, EIO, .storageFailure, "lstat"),
            (3, EACCES, .accessDenied, "open"), (4, EIO, .storageFailure, "fstat"), (5, EIO, .storageFailure, "read at offset 0"),
        ]
        for (skip, code, expected, call) in cases {
            let error = expectFailure(at: .dataFile, skipping: skip, errno: code, expected) { try IOASIDStore(path: path) }
            #expect(error?.message.contains("\(call) failed") == true, "\(String(describing: error))")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb")) == before)
        // Without data.mdb, the check looks for lock.mdb to tell a removed data file from no store.
        try FileManager.default.removeItem(atPath: path + "/data.mdb")
        _ = expectFailure(at: .dataFile, skipping: 2, errno: EIO, .storageFailure) { try IOASIDStore(path: path) }
    }

    @Test("verify and repair of an open store whose data file cannot be walked: storageFailure, or damage when it turned into a symbolic link; nothing written")
    func walkFailures() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (store, _) = try makeStore(in: dir)
        let before = try store.rawDump()
        // The walk's stat of the directory, lstat, lstat, open and fstat of data.mdb, then its first read.
        for skip in 0..<6 {
            let verify = expectFailure(at: .dataFile, skipping: skip, errno: EIO, .storageFailure) { try store.verify() }
            #expect(verify?.message.contains(dir.child("store")) == true, "\(String(describing: verify))")
            _ = expectFailure(at: .dataFile, skipping: skip, errno: EIO, .storageFailure) { try store.repair() }
        }
        // O_NOFOLLOW's ELOOP: data.mdb became a symbolic link after it was examined.
        let (plan, result) = SyscallFaults.failing(.dataFile, with: ELOOP, skipping: 3) { try store.verify() }
        #expect(plan.injected == 1)
        let report = try result.get()
        #expect(!report.isStructurallySound && report.violations.first?.message.contains("symbolic link") == true, "\(report.violations)")
        _ = expectFailure(at: .dataFile, skipping: 3, errno: ELOOP, .corruptStore) { try store.repair() }
        #expect(try store.rawDump() == before)
        #expect(try store.verify().isClean)
    }

    @Test("A plan fails only the call it names, once, and only inside its scope")
    func planScope() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (plan, result) = SyscallFaults.failing(.fsync, with: EIO, skipping: 1) { () throws -> Int in
            let file = try SystemFile.createPrivate(dir.child("a"))
            try file.sync()  // the first passes
            do { try file.sync() } catch let error as LMDBError { return Int(error.code) }  // the second fails
            try file.sync()  // and the third passes again
            return 0
        }
        #expect(plan.injected == 1)
        #expect(try result.get() == Int(EIO))
        let file = try SystemFile.createPrivate(dir.child("b"))
        try file.sync()
        #expect(plan.injected == 1)
    }
}
