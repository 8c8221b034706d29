import Foundation
import Synchronization
import LMDB
import Testing

// MARK: Helpers shared by the data-file and page-walker tests

/// A fresh, empty temporary directory, removed after `body`.
func withScratchDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("lmdb-pages-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// What a fixture store holds: every named database and its records.
struct FixtureContents {
    var databases: [String: [[UInt8]: [UInt8]]] = [:]
}

/// Fills a store at `path` with several named databases, values larger than a page
/// (overflow pages) and deletions and rewrites (a non-empty free list), then closes it.
@discardableResult
func makeFixtureStore(at path: String, records: Int = 50_000) throws -> FixtureContents {
    var contents = FixtureContents()
    do {
        let env = try Environment.open(path: path)
        let names = ["alpha", "beta", "gamma", "delta"]
        let dbs = try names.map { try env.openDatabase(named: $0, create: true) }
        var generator = SplitMix64(seed: 42)
        // Four commits so that pages are freed and reused along the way.
        for round in 0 ..< 4 {
            try env.write { txn in
                for i in 0 ..< records / 4 {
                    let n = UInt32(round * records / 4 + i)
                    let which = Int(n % 4)
                    let k = key(n)
                    var value: [UInt8]
                    switch which {
                    case 2 where n % 97 == 0:
                        value = [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: 5000 + Int(n % 9000))  // overflow pages
                    default:
                        value = (0 ..< (8 + Int(generator.next() % 40))).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                    }
                    try txn.put(value, forKey: k, in: dbs[which])
                    contents.databases[names[which], default: [:]][k] = value
                }
            }
        }
        // Deletions and rewrites: the free list fills up.
        try env.write { txn in
            for n in stride(from: 0, to: UInt32(records), by: 3) {
                let which = Int(n % 4)
                try txn.delete(key(n), in: dbs[which])
                contents.databases[names[which]]?[key(n)] = nil
            }
        }
        try env.write { txn in
            for n in stride(from: UInt32(1), to: UInt32(records), by: 10) {
                let which = Int(n % 4)
                let value = [UInt8](repeating: 0xAB, count: 20)
                try txn.put(value, forKey: key(n), in: dbs[which])
                contents.databases[names[which]]?[key(n)] = value
            }
        }
    }
    return contents
}

/// A replayable random generator (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func readData(_ directory: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/data.mdb")))
}

func writeData(_ bytes: [UInt8], to directory: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: directory + "/data.mdb"))
}

/// A copy of `bytes`, damaged by `damage`, as the only file of a new directory inside `root`.
func damagedCopy(_ bytes: [UInt8], in root: String, _ damage: (inout [UInt8]) -> Void) throws -> String {
    let directory = root + "/" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    var copy = bytes
    damage(&copy)
    try writeData(copy, to: directory)
    return directory
}

/// Expects `inspect` to throw a damage error with `reason`; returns it.
@discardableResult
func expectDamage(_ directory: String, _ reason: DataFileError.Reason, sourceLocation: SourceLocation = #_sourceLocation) -> DataFileError? {
    do {
        let result = try DataFile.inspect(directory: directory)
        Issue.record("expected \(reason), got \(result)", sourceLocation: sourceLocation)
        return nil
    } catch {
        #expect(error.reason == reason, "\(error)", sourceLocation: sourceLocation)
        #expect(error.message.contains(directory), "the message names the path: \(error.message)", sourceLocation: sourceLocation)
        return error
    }
}

// MARK: Little-endian field access for building damage

extension Array where Element == UInt8 {
    func u16(_ offset: Int) -> Int { Int(self[offset]) | Int(self[offset + 1]) << 8 }
    func u64(_ offset: Int) -> UInt64 { (0 ..< 8).reduce(UInt64(0)) { $0 | UInt64(self[offset + $1]) << (8 * $1) } }
    mutating func setU16(_ offset: Int, _ value: Int) {
        self[offset] = UInt8(value & 0xFF)
        self[offset + 1] = UInt8((value >> 8) & 0xFF)
    }
    mutating func setU32(_ offset: Int, _ value: UInt32) {
        for i in 0 ..< 4 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }
    mutating func setU64(_ offset: Int, _ value: UInt64) {
        for i in 0 ..< 8 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }
}

// MARK: Meta checks

@Suite("Data file meta checks")
struct DataFileTests {
    @Test("No directory, or a directory without store files, is not initialised")
    func notInitialised() throws {
        try withScratchDirectory { root in
            let absent = try DataFile.inspect(directory: root + "/absent")
            #expect(absent == .notInitialized)
            let bare = try DataFile.inspect(directory: root)
            #expect(bare == .notInitialized)
            #expect(throws: DataFileError.self) { try PageWalker.check(directory: root) }
        }
    }

    @Test("A fresh store and a filled one pass, with what their meta pages say")
    func soundStores() throws {
        try withScratchDirectory { root in
            let fresh = root + "/fresh"
            do { _ = try Environment.open(path: fresh) }
            guard case .valid(let empty) = try DataFile.inspect(directory: fresh) else {
                Issue.record("fresh store not valid")
                return
            }
            #expect(empty.pageSize == 4096)
            #expect(empty.lastPage == 1)
            #expect(empty.mainRoot == nil)
            #expect(empty.fileSize >= 2 * 4096)

            let filled = root + "/filled"
            try makeFixtureStore(at: filled, records: 4000)
            guard case .valid(let summary) = try DataFile.inspect(directory: filled) else {
                Issue.record("filled store not valid")
                return
            }
            #expect(summary.mainEntries == 4)  // four named databases
            #expect(summary.mainRoot != nil)
            #expect(summary.freeRoot != nil)
            #expect(summary.transactionID >= 6)
            #expect(summary.newestMeta == Int(summary.transactionID & 1))
            #expect(UInt64(summary.fileSize) >= (summary.lastPage + 1) * UInt64(summary.pageSize))
        }
    }

    /// Every open of a store checks its meta pages while other processes may be
    /// committing: a check that takes the file's length before reading a meta page
    /// written after it (naming pages added since) called a live store truncated.
    @Test("A store growing under concurrent commits always passes the meta checks")
    func liveStoreUnderCommits() throws {
        try withScratchDirectory { root in
            let path = root + "/live"
            var options = Environment.Options()
            options.durable = false  // many commits a second, each growing the file
            let env = try Environment.open(path: path, options: options)
            let db = try env.openDatabase(named: "grow", create: true)
            let stop = Atomic<Bool>(false)
            let commits = Atomic<Int>(0)
            let writer = Thread {
                var n: UInt32 = 0
                while !stop.load(ordering: .relaxed) {
                    try? env.write { txn in
                        for _ in 0 ..< 40 {
                            n &+= 1
                            try txn.put([UInt8](repeating: UInt8(truncatingIfNeeded: n), count: 200), forKey: key(n), in: db)
                        }
                    }
                    commits.add(1, ordering: .relaxed)
                }
            }
            writer.start()
            defer { stop.store(true, ordering: .relaxed) }
            var failures: [String] = []
            var checks = 0
            let deadline = ContinuousClock.now + .seconds(2)
            while ContinuousClock.now < deadline {
                do {
                    guard case .valid = try DataFile.inspect(directory: path) else {
                        failures.append("not initialised")
                        continue
                    }
                } catch {
                    failures.append("\(error)")
                }
                checks += 1
            }
            stop.store(true, ordering: .relaxed)
            #expect(commits.load(ordering: .relaxed) > 100, "the writer made too few commits to mean anything")
            #expect(failures.count == 0, "\(failures.count) of \(checks) checks failed during \(commits.load(ordering: .relaxed)) commits; first: \(failures.first ?? "")")
            while !writer.isFinished { usleep(1000) }
        }
    }

    @Test("Truncated to 0, to 8192 bytes and to half: each named, nothing written")
    func truncations() throws {
        try withScratchDirectory { root in
            try makeFixtureStore(at: root + "/store", records: 4000)
            let bytes = try readData(root + "/store")
            let empty = try damagedCopy(bytes, in: root) { $0 = [] }
            expectDamage(empty, .empty)
            #expect(try readData(empty).isEmpty)  // still empty: nothing wrote a store into it

            let short = try damagedCopy(bytes, in: root) { $0 = Array($0[0 ..< 8192]) }
            let error = expectDamage(short, .truncated)
            #expect(error?.message.contains("is 8192 bytes but its meta page") == true, "\(String(describing: error))")

            let half = try damagedCopy(bytes, in: root) { $0 = Array($0[0 ..< $0.count / 2]) }
            expectDamage(half, .truncated)
            // The walker refuses the same files for the same reasons, without throwing.
            for (directory, reason) in [(empty, DataFileError.Reason.empty), (short, .truncated), (half, .truncated)] {
                let report = try PageWalker.check(directory: directory)
                #expect(!report.isClean)
                #expect(report.metaError?.reason == reason)
                #expect(report.problems.first?.kind == .meta)
            }

            let tiny = try damagedCopy(bytes, in: root) { $0 = Array($0[0 ..< 100]) }
            expectDamage(tiny, .truncated)
            let onePage = try damagedCopy(bytes, in: root) { $0 = Array($0[0 ..< 4096]) }
            expectDamage(onePage, .truncated)
        }
    }

    @Test("Zeroed meta page, wrong magic, wrong version, bad page size, page sizes that disagree")
    func metaDamage() throws {
        try withScratchDirectory { root in
            try makeFixtureStore(at: root + "/store", records: 2000)
            let bytes = try readData(root + "/store")
            expectDamage(try damagedCopy(bytes, in: root) { for i in 0 ..< 4096 { $0[i] = 0 } }, .notMetaPage)
            expectDamage(try damagedCopy(bytes, in: root) { for i in 4096 ..< 8192 { $0[i] = 0 } }, .notMetaPage)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU32(16, 0xDEAD_BEEF) }, .badMagic)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU32(4096 + 16, 0xBEEF_C0DF) }, .badMagic)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU32(20, 2) }, .badVersion)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU32(40, 0) }, .badPageSize)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU32(40, 4097) }, .badPageSize)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU32(40, 65536) }, .badPageSize)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU32(4096 + 40, 8192) }, .pageSizeMismatch)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU64(136, 0); $0.setU64(4096 + 136, 0) }, .badLastPage)
            // The newest meta page claims far more data than the file holds.
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU64(4096 + 136, 1 << 40) }, .truncated)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU64(136, UInt64.max) }, .truncated)
            // A transaction ID in the wrong slot, and roots outside the data.
            let newest = bytes.u64(144) > bytes.u64(4096 + 144) ? 0 : 4096
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU64(newest + 144, $0.u64(newest + 144) + 1) }, .metaSlotMismatch)
            // Transaction IDs more than one commit apart: a damaged ID would make LMDB read an older
            // commit (the older meta page's) without a word, whichever of the two was hit.
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU64(newest + 144, $0.u64(newest + 144) + 2) }, .transactionGap)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU64(4096 - newest + 144, $0.u64(4096 - newest + 144) &- 2) }, .transactionGap)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU64(newest + 88 + 40, 1) }, .badRoot)
            expectDamage(try damagedCopy(bytes, in: root) { $0.setU64(newest + 40 + 40, $0.u64(newest + 136) + 1) }, .badRoot)
            // Flags: MDB_DUPSORT on the free list (LMDB would abort on the next write), any flag on the main database.
            expectDamage(try damagedCopy(bytes, in: root) { $0[newest + 40 + 4] |= 0x04 }, .badFlags)
            expectDamage(try damagedCopy(bytes, in: root) { $0[newest + 88 + 4] |= 0x02 }, .badFlags)
            // The older meta page's transaction ID, flags and roots are not LMDB's concern: still valid.
            let older = 4096 - newest
            let olderFlags = try damagedCopy(bytes, in: root) { $0[older + 88 + 4] |= 0x02 }
            #expect(throws: Never.self) { try DataFile.inspect(directory: olderFlags) }
        }
    }

    @Test("data.mdb as a symbolic link, a directory or a FIFO; lock.mdb without data.mdb; a file as the store path")
    func fileKinds() throws {
        try withScratchDirectory { root in
            try makeFixtureStore(at: root + "/store", records: 1000)

            let linked = root + "/linked"
            try FileManager.default.createDirectory(atPath: linked, withIntermediateDirectories: false)
            try FileManager.default.createSymbolicLink(atPath: linked + "/data.mdb", withDestinationPath: root + "/store/data.mdb")
            expectDamage(linked, .notRegularFile)
            let walkedLink = try PageWalker.check(directory: linked)
            #expect(walkedLink.problems.first?.kind == .meta)
            #expect(try PageWalker.check(dataFile: linked + "/data.mdb").problems.first?.kind == .meta)

            let dirAsData = root + "/dir"
            try FileManager.default.createDirectory(atPath: dirAsData + "/data.mdb", withIntermediateDirectories: true)
            expectDamage(dirAsData, .notRegularFile)

            let fifo = root + "/fifo"
            try FileManager.default.createDirectory(atPath: fifo, withIntermediateDirectories: false)
            #expect(mkfifo(fifo + "/data.mdb", 0o600) == 0)
            expectDamage(fifo, .notRegularFile)  // and does not block

            let lockOnly = root + "/lock-only"
            try FileManager.default.createDirectory(atPath: lockOnly, withIntermediateDirectories: false)
            try FileManager.default.copyItem(atPath: root + "/store/lock.mdb", toPath: lockOnly + "/lock.mdb")
            let missing = expectDamage(lockOnly, .missing)
            #expect(missing?.message.contains("lock.mdb") == true)
            #expect(try PageWalker.check(directory: lockOnly).isClean == false)

            #expect(FileManager.default.createFile(atPath: root + "/plain", contents: Data([1, 2, 3])))
            expectDamage(root + "/plain", .notADirectory)
        }
    }

    @Test("An unreadable data file is an I/O error, not damage")
    func unreadable() throws {
        guard getuid() != 0 else { return }  // root reads anything
        try withScratchDirectory { root in
            try makeFixtureStore(at: root + "/store", records: 100)
            #expect(chmod(root + "/store/data.mdb", 0) == 0)
            defer { chmod(root + "/store/data.mdb", 0o600) }
            #expect {
                try DataFile.inspect(directory: root + "/store")
            } throws: { error in
                (error as? DataFileError)?.reason == .io && (error as? DataFileError)?.errno == EACCES
            }
            #expect(throws: DataFileError.self) { try PageWalker.check(directory: root + "/store") }
        }
    }
}
