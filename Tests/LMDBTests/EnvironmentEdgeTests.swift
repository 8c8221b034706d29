import Foundation
import LMDB
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` on `count` threads at once, each inside a read transaction of
/// `env`, and returns once all of them have finished: every reader is open at
/// the same time before any of them ends.
private func concurrentReads(_ env: Environment, count: Int, _ body: @escaping @Sendable (borrowing Transaction) throws -> Void) throws {
    let inside = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    let failures = Mutex<[String]>([])
    let threads = (0 ..< count).map { _ in
        Thread {
            do {
                try env.read { txn in
                    inside.signal()
                    release.wait()
                    try body(txn)
                }
            } catch {
                inside.signal()
                failures.withLock { $0.append("\(error)") }
            }
        }
    }
    for thread in threads { thread.start() }
    for _ in 0 ..< count { inside.wait() }
    for _ in 0 ..< count { release.signal() }
    while threads.contains(where: { !$0.isFinished }) { usleep(1000) }
    let failed = failures.withLock { $0 }
    #expect(failed.isEmpty, "\(failed)")
}

/// Runs `body` on a thread of its own whose file accesses are checked like an
/// unprivileged user's: for root, its file-system user ID is set to `nobody`
/// (which drops the capabilities that override file modes, for that thread only).
private func withoutFileSystemPrivileges<R: Sendable>(_ body: @escaping @Sendable () throws -> R) throws -> R {
    typealias SetFSUID = @convention(c) (UInt32) -> Int32
    let outcome = Mutex<Result<R, any Error>?>(nil)
    let thread = Thread {
        var switched = false
        if getuid() == 0, let symbol = dlsym(dlopen(nil, RTLD_NOW), "setfsuid") {
            let setfsuid = unsafeBitCast(symbol, to: SetFSUID.self)
            _ = setfsuid(65534)
            switched = true
        }
        let result = Result { try body() }
        if switched, let symbol = dlsym(dlopen(nil, RTLD_NOW), "setfsuid") {
            _ = unsafeBitCast(symbol, to: SetFSUID.self)(0)
        }
        outcome.withLock { $0 = result }
    }
    thread.start()
    while !thread.isFinished { usleep(1000) }
    guard let result = outcome.withLock({ $0 }) else { throw LMDBError.invalidArgument }
    return try result.get()
}

@Suite("LMDB layer: error paths")
struct EnvironmentEdgeTests {
    @Test("Opening: a missing parent, a missing store without create, a directory without data.mdb")
    func openFailures() throws {
        try withScratchDirectory { root in
            // mkdir fails for a reason other than EEXIST.
            #expect(throws: LMDBError.noEntry) { try Environment.open(path: root + "/missing/store") }
            #expect(!FileManager.default.fileExists(atPath: root + "/missing"))

            // Nothing there and nothing to be created: stat fails (the path cannot be canonicalised either).
            var existing = Environment.Options()
            existing.create = false
            #expect(throws: LMDBError.noEntry) { try Environment.open(path: root + "/absent", options: existing) }
            #expect(!FileManager.default.fileExists(atPath: root + "/absent"))

            // A directory with no data.mdb: not created when create is off or the open is read-only.
            try FileManager.default.createDirectory(atPath: root + "/bare", withIntermediateDirectories: false)
            #expect(throws: LMDBError.noEntry) { try Environment.open(path: root + "/bare", options: existing) }
            var readOnly = Environment.Options()
            readOnly.readOnly = true
            #expect(throws: LMDBError.noEntry) { try Environment.open(path: root + "/bare", options: readOnly) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/bare").isEmpty)
        }
    }

    @Test("A read-only open of a store whose files it cannot write runs without the lock file")
    func readOnlyFilesWithoutLock() throws {
        try withScratchDirectory { root in
            let path = root + "/store"
            do {
                let env = try Environment.open(path: path)
                let db = try env.openDatabase(named: "kept", create: true)
                try env.write { txn in try txn.put([8], forKey: key(8), in: db) }
            }
            // Readable by everyone, writable by no one but the owner (and, for data.mdb and lock.mdb, not even by it).
            for (file, mode) in [(root, 0o755), (path, 0o755), (path + "/data.mdb", 0o444), (path + "/lock.mdb", 0o444)] {
                #expect(chmod(file, mode_t(mode)) == 0)
            }
            let outcome = try withoutFileSystemPrivileges { () throws -> (Bool, [UInt8]?)? in
                // The case this test needs: lock.mdb cannot be opened for writing.
                let probe = open(path + "/lock.mdb", O_RDWR | O_CLOEXEC)
                if probe >= 0 {
                    close(probe)
                    return nil
                }
                #expect(errno == EACCES)
                var options = Environment.Options()
                options.readOnly = true
                let env = try Environment.open(path: path, options: options)
                let db = try env.openDatabase(named: "kept")
                return (env.isLockless, try env.read { txn in try txn.get(key(8), in: db) })
            }
            guard let outcome else { return }  // privileges that override file modes could not be given up here
            #expect(outcome.0, "opened without lock.mdb")
            #expect(outcome.1 == [8])
            // Nothing was written: lock.mdb is as it was.
            #expect(try FileSystem.status(path + "/lock.mdb")?.permissions == 0o444)
        }
    }

    @Test("A read-only environment cannot create a database; an absent one is not found")
    func openDatabaseFailures() throws {
        try withScratchDirectory { root in
            do {
                let env = try Environment.open(path: root + "/store")
                let db = try env.openDatabase(named: "present", create: true)
                #expect(db.description == "present")
                #expect("\(db)" == db.name)
            }
            var options = Environment.Options()
            options.readOnly = true
            let env = try Environment.open(path: root + "/store", options: options)
            // The write transaction that would create it cannot begin.
            #expect(throws: LMDBError.accessDenied) { try env.openDatabase(named: "new", create: true) }
            #expect(throws: LMDBError.notFound) { try env.openDatabase(named: "new") }
            let present = try env.openDatabase(named: "present")
            #expect(present.name == "present")
            #expect(throws: LMDBError.accessDenied) { try env.write { _ in } }
        }
    }

    @Test("A full reader table: stale slots are cleared and the read tried once more, then readersFull")
    func readersFull() throws {
        var options = Environment.Options()
        options.maxReaders = 1
        try withEnvironment(options) { env, db in
            try env.write { txn in try txn.put([7], forKey: key(1), in: db) }
            let inside = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            let seen = Mutex<[UInt8]?>(nil)
            let holder = Thread {
                let value = try? env.read { txn -> [UInt8]? in
                    inside.signal()
                    release.wait()
                    return try txn.get(key(1), in: db)
                }
                seen.withLock { $0 = value ?? nil }
            }
            holder.start()
            inside.wait()
            // The one slot is taken by a live reader of this process: clearing stale slots frees nothing.
            #expect(try env.clearStaleReaders() == 0)
            #expect(throws: LMDBError.readersFull) { try env.read { txn in try txn.get(key(1), in: db) } }
            release.signal()
            while !holder.isFinished { usleep(1000) }
            #expect(seen.withLock { $0 } == [7])
            // Its reader went back to the pool and serves the next read.
            #expect(try env.read { txn in try txn.get(key(1), in: db) } == [7])
        }
    }

    @Test("A reader slot left by a dead process is cleared when the table is full, and the read goes ahead")
    func staleReaderCleared() throws {
        var options = Environment.Options()
        options.maxReaders = 2
        try withEnvironment(options) { env, db in
            try env.write { txn in try txn.put([5], forKey: key(5), in: db) }
            #expect(try env.read { txn in try txn.get(key(5), in: db) } == [5])  // slot 0: this process (its reader is pooled)

            // lock.mdb (LMDB 0.9, 64-bit Linux): the header's first cache line holds the magic and,
            // at 56, the number of reader slots in use; the slots (64 bytes each: txnid, pid, tid) start at 128.
            let fd = open(env.path + "/lock.mdb", O_RDWR | O_CLOEXEC)
            try #require(fd >= 0)
            defer { close(fd) }
            func u32(at offset: off_t) -> UInt32 {
                var value: UInt32 = 0
                _ = pread(fd, &value, 4, offset)
                return UInt32(littleEndian: value)
            }
            func set<T: FixedWidthInteger>(_ value: T, at offset: off_t) {
                var raw = value.littleEndian
                _ = pwrite(fd, &raw, MemoryLayout<T>.size, offset)
            }
            try #require(u32(at: 0) == 0xBEEF_C0DE, "not the lock file layout this test knows")
            try #require(u32(at: 56) == 1 && u32(at: 128 + 8) == UInt32(getpid()), "not the reader table layout this test knows")
            // Slot 1: a reader of a process that died mid-read (no lock on its pid's byte of lock.mdb).
            let deadPID: UInt32 = 0x3F_FFFF
            set(UInt64(1), at: 128 + 64)
            set(deadPID, at: 128 + 64 + 8)
            set(UInt32(2), at: 56)

            // One read holds slot 0; a second needs a slot of its own and finds the table full.
            let inside = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            let holder = Thread {
                _ = try? env.read { _ in
                    inside.signal()
                    release.wait()
                }
            }
            holder.start()
            inside.wait()
            defer {
                release.signal()
                while !holder.isFinished { usleep(1000) }
            }
            #expect(try env.read { txn in try txn.get(key(5), in: db) } == [5])
            // The dead reader's slot was cleared and taken by this read.
            #expect(u32(at: 128 + 64 + 8) == UInt32(getpid()))
        }
    }

    @Test("At most eight idle readers are kept: the ninth releases its reader slot")
    func idleReaderPool() throws {
        var options = Environment.Options()
        options.maxReaders = 9
        try withScratchDirectory { root in
            let env = try Environment.open(path: root + "/store", options: options)
            let db = try env.openDatabase(named: "test", create: true)
            try env.write { txn in try txn.put([1], forKey: key(1), in: db) }
            // Nine readers at once fill the table; eight go back to the pool (keeping their slots), one is closed.
            try concurrentReads(env, count: 9) { txn throws in
                #expect(try txn.get(key(1), in: db) == [1])
            }
            // A copy takes a reader slot of its own, outside the pool: one must be free.
            try FileManager.default.createDirectory(atPath: root + "/copy", withIntermediateDirectories: false)
            try env.copy(to: root + "/copy")
            #expect(try PageWalker.check(directory: root + "/copy").isClean)
            // Nine at once again: eight from the pool, one new.
            try concurrentReads(env, count: 9) { txn throws in
                #expect(try txn.count(of: db) == 1)
            }
        }
    }

    @Test("Reads on 40 environments nest on one thread (32 are marked, the rest go unmarked), and every mark is gone afterwards")
    func manyEnvironmentsNest() throws {
        try withScratchDirectory { root in
            let envs = try (0 ..< 40).map { i in try Environment.open(path: root + "/env\(i)") }
            let dbs = try envs.map { try $0.openDatabase(named: "test", create: true) }
            for (i, env) in envs.enumerated() { try env.write { txn in try txn.put([UInt8(i)], forKey: key(1), in: dbs[i]) } }
            func nest(_ i: Int) throws -> Int {
                guard i < envs.count else { return 0 }
                return try envs[i].read { txn in
                    #expect(try txn.get(key(1), in: dbs[i]) == [UInt8(i)])
                    return try nest(i + 1) + 1
                }
            }
            #expect(try nest(0) == 40)
            // A mark left behind would make these trap as nested.
            #expect(try nest(0) == 40)
            for (i, env) in envs.enumerated() { try env.write { txn in try txn.put([UInt8(i + 1)], forKey: key(1), in: dbs[i]) } }
        }
    }

    @Test("A fault seen by one read: readers still open are closed as they end, and nothing starts again")
    func faultWhileOthersRead() throws {
        try withEnvironment { env, db in
            try env.write { txn in try txn.put([3], forKey: key(3), in: db) }
            let inside = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            let seen = Mutex<Result<[UInt8]?, LMDBError>?>(nil)
            let holder = Thread {
                let result = Result { () throws(LMDBError) -> [UInt8]? in
                    do {
                        return try env.read { txn in
                            inside.signal()
                            release.wait()
                            return try txn.get(key(3), in: db)
                        }
                    } catch let error as LMDBError {
                        throw error
                    } catch {
                        throw LMDBError.invalidArgument
                    }
                }
                seen.withLock { $0 = result }
            }
            holder.start()
            inside.wait()
            #expect(throws: LMDBError.fault) { try env.read { _ -> Int in throw LMDBError.fault } }
            release.signal()
            while !holder.isFinished { usleep(1000) }
            // The read already open finished normally ...
            #expect(seen.withLock { $0 } == .success([3]))
            // ... and no transaction begins on the environment again.
            #expect(throws: LMDBError.fault) { try env.read { txn in try txn.get(key(3), in: db) } }
            #expect(throws: LMDBError.fault) { try env.write { txn in try txn.put([4], forKey: key(4), in: db) } }
        }
    }

    @Test("Transactions: write counts, absent values, empty values, no nesting in a read")
    func transactionEdges() throws {
        try withEnvironment { env, db in
            let counts = try env.write { txn -> [Int] in
                let before = txn.writeCount
                try txn.put([], forKey: key(1), in: db)
                let afterPut = txn.writeCount
                try txn.delete(key(1), in: db)
                try txn.put([], forKey: key(2), in: db)
                return [before, afterPut, txn.writeCount]
            }
            #expect(counts == [0, 1, 3])
            let (readCount, empty, absent, viaReader, missing) = try env.read { txn in
                (txn.writeCount, try txn.get(key(2), in: db), try txn.get(key(1), in: db),
                 try txn.withValue(forKey: key(2), in: db) { $0.remaining },
                 try txn.withValue(forKey: key(9), in: db) { $0.remaining })
            }
            #expect(readCount == 0)
            #expect(empty == [])
            #expect(absent == nil)
            #expect(viaReader == 0)
            #expect(missing == nil)
            #expect(try env.read { $0.isReadOnly })
            #expect(throws: LMDBError.invalidArgument) {
                try env.read { txn in try txn.nested { _ in 1 } }
            }
        }
    }

    @Test("Cursor entries: key accessors refuse offsets outside the key")
    func cursorEntryBounds() throws {
        try withEnvironment { env, db in
            try env.write { txn in try txn.put([1], forKey: Array("abcd".utf8), in: db) }
            let results = try env.read { txn in
                try txn.withCursor(on: db) { cursor in
                    try cursor.withFirst { entry in
                        (entry.keyU32(at: -1), entry.keyU32(at: 1), entry.keyU32(at: 0),
                         entry.keyText(from: -1), entry.keyText(from: 5), entry.keyText(from: 4), entry.keyText(from: 2))
                    }
                }
            }
            guard let results else {
                Issue.record("no first entry")
                return
            }
            #expect(results.0 == nil)
            #expect(results.1 == nil)
            #expect(results.2 == 0x6162_6364)
            #expect(results.3 == nil)
            #expect(results.4 == nil)
            #expect(results.5 == "")
            #expect(results.6 == "cd")
        }
    }

    @Test("Value readers and big-endian decoding refuse to read past the end")
    func readerBounds() throws {
        let bytes: [UInt8] = [0x01, 0x02, 0x03]
        #expect(throws: ValueReader.Underflow.self) { try ValueReader.reading(bytes) { try $0.bytes(-1) } }
        #expect(throws: ValueReader.Underflow.self) { try ValueReader.reading(bytes) { try $0.bytes(4) } }
        #expect(throws: ValueReader.Underflow.self) { try ValueReader.reading(bytes) { try $0.u32() } }
        #expect(throws: ValueReader.Underflow.self) { try ValueReader.reading(bytes) { _ = try $0.u16(); return try $0.u16() } }
        #expect(throws: ValueReader.Underflow.self) { try ValueReader.reading([UInt8](repeating: 0, count: 7)) { try $0.u64() } }
        let (first, rest, remaining) = try ValueReader.reading(bytes) { reader in (try reader.u16(), try reader.bytes(1), reader.remaining) }
        #expect(first == 0x0102)
        #expect(rest == [0x03])
        #expect(remaining == 0)
        #expect(try ValueReader.reading([]) { try $0.bytes(0) } == [])

        #expect(BigEndian.u64([1, 2, 3]) == nil)
        #expect(BigEndian.u64([UInt8](repeating: 1, count: 9)) == nil)
        #expect(BigEndian.u64([0, 0, 0, 0, 0, 0, 1, 2]) == 0x0102)
        #expect(BigEndian.u32([1, 2, 3], at: 0) == nil)
        #expect(BigEndian.u32([1, 2, 3, 4], at: -1) == nil)
    }

    @Test("System files: open, read and directory sync failures carry their errno; EINTR is retried")
    func systemFileErrors() throws {
        try withScratchDirectory { root throws in
            #expect(throws: LMDBError.noEntry) { _ = try SystemFile.openForReading(root + "/absent") }
            #expect(throws: LMDBError.noEntry) { try FileSystem.syncDirectory(root + "/absent") }
            #expect(FileManager.default.createFile(atPath: root + "/file", contents: Data([1, 2, 3, 4, 5])))

            // An interrupted open and an interrupted read are retried.
            let (plan, result) = SyscallFaults.failing([.init(.open, errno: EINTR), .init(.read, errno: EINTR)]) { () throws -> [UInt8] in
                let file = try SystemFile.openForReading(root + "/file")
                var buffer: [UInt8] = []
                #expect(try file.read(into: &buffer, upTo: 0) == 0)
                #expect(try file.read(into: &buffer, upTo: 3) == 3)
                #expect(try file.read(into: &buffer, upTo: 10) == 2)
                #expect(try file.read(into: &buffer, upTo: 10) == 0)
                return buffer
            }
            #expect(plan.injected == 2)
            #expect(try result.get() == [1, 2, 3, 4, 5])

            // Any other read error is thrown with its errno, appending nothing.
            let (failedPlan, failed) = SyscallFaults.failing(.read, with: EIO) { () throws -> [UInt8] in
                let file = try SystemFile.openForReading(root + "/file")
                var buffer: [UInt8] = [9]
                do {
                    try file.read(into: &buffer, upTo: 4)
                } catch {
                    #expect(buffer == [9])
                    throw error
                }
                return buffer
            }
            #expect(failedPlan.injected == 1)
            #expect(throws: LMDBError.io) { try failed.get() }
        }
    }

    @Test("Paths and file kinds: parents of trailing-slash and root-level paths; devices and FIFOs are 'other'")
    func pathsAndKinds() throws {
        #expect(FileSystem.parent(of: "a/b/") == "a")
        #expect(FileSystem.parent(of: "/store/") == "/")
        #expect(FileSystem.parent(of: "/store") == "/")
        #expect(FileSystem.parent(of: "/") == "/")
        #expect(FileSystem.parent(of: "store") == ".")
        #expect(FileSystem.parent(of: "/srv/ioasid/store") == "/srv/ioasid")
        #expect(try FileSystem.status("/dev/null")?.kind == .other)
        try withScratchDirectory { root throws in
            #expect(mkfifo(root + "/fifo", 0o600) == 0)
            #expect(try FileSystem.status(root + "/fifo")?.kind == .other)
            #expect(try FileSystem.status(root + "/absent") == nil)
            #expect(try FileSystem.status(root)?.kind == .directory)
        }
    }

    @Test("A read whose closure throws LMDB's retry errors runs the closure once and passes the error on")
    func readRetriesOnlyItsBegin() throws {
        try withScratchDirectory { root in
            let env = try Environment.open(path: root + "/store")
            // A read adopts a grown map or clears stale readers and tries again only when
            // beginning its transaction fails so; the same errors thrown by the closure
            // (from another environment, say) are the caller's, and the closure has effects.
            for error in [LMDBError.mapResized, .readersFull] {
                var runs = 0
                #expect(throws: error) {
                    try env.read { _ in
                        runs += 1
                        if runs > 3 { return }
                        throw error
                    }
                }
                #expect(runs == 1, "\(error): the closure ran \(runs) times")
            }
            // The environment is usable afterwards, and the thread's mark is gone.
            #expect(try env.read { $0.isReadOnly })
        }
    }
}
