import Foundation
import LMDB
import Synchronization
import Testing

/// A fresh environment in a temporary directory.
func withEnvironment<R>(_ options: Environment.Options = .init(), _ body: (Environment, Database) throws -> R) throws -> R {
    let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("lmdb-test-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(atPath: path) }
    let env = try Environment.open(path: path, options: options)
    let db = try env.openDatabase(named: "test", create: true)
    return try body(env, db)
}

func key(_ i: UInt32) -> [UInt8] { withUnsafeBytes(of: i.bigEndian) { Array($0) } }

/// An environment with a 64 KiB map (a few hundred 512-byte records grow it) holding key 0 → [7].
func withSmallMap<R>(_ body: (Environment, Database) throws -> R) throws -> R {
    var options = Environment.Options()
    options.mapSize = 64 * 1024
    return try withEnvironment(options) { env, db in
        try env.write { txn in try txn.put([7], forKey: key(0), in: db) }
        return try body(env, db)
    }
}

/// Puts 512 bytes under each of `keys` in one write transaction: enough of them grow a small map.
func putPadding(_ env: Environment, _ keys: ClosedRange<UInt32>, in db: Database) throws {
    let value = [UInt8](repeating: 9, count: 512)
    try env.write { txn in for i in keys { try txn.put(value, forKey: key(i), in: db) } }
}

@Suite("LMDB layer")
struct EnvironmentTests {
    @Test("One environment per path per process")
    func sharedPerPath() throws {
        try withEnvironment { env, _ in
            let again = try Environment.open(path: env.path)
            #expect(again === env)
        }
    }

    @Test("A database handle keeps its own name, and handles are equal when they are the same database")
    func databaseNames() throws {
        try withEnvironment { env, test in
            let alpha = try env.openDatabase(named: "alpha", create: true)
            let beta = try env.openDatabase(named: "beta \u{1F600}", create: true)
            let alphaAgain = try env.openDatabase(named: "alpha")
            #expect(test.name == "test" && alpha.name == "alpha" && beta.name == "beta \u{1F600}")
            #expect("\(beta)" == "beta \u{1F600}")
            #expect(alpha == alphaAgain && alpha != beta && alpha != test)
            #expect(Set([alpha, beta, alphaAgain, test]).count == 3)
            let names = try env.read { txn in try txn.openDatabase(named: "beta \u{1F600}").name }
            #expect(names == "beta \u{1F600}")
        }
    }

    @Test("Files are created readable and writable by the owner only")
    func fileModes() throws {
        try withEnvironment { env, _ in
            let attributes = try FileManager.default.attributesOfItem(atPath: env.path + "/data.mdb")
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            let dir = try FileManager.default.attributesOfItem(atPath: env.path)
            #expect((dir[.posixPermissions] as? Int) == 0o700)
        }
    }

    @Test("A write that throws leaves nothing behind")
    func writeRollsBack() throws {
        struct Abort: Error {}
        try withEnvironment { env, db in
            #expect(throws: Abort.self) {
                try env.write { txn in
                    try txn.put([1], forKey: key(1), in: db)
                    throw Abort()
                }
            }
            let value = try env.read { try $0.get(key(1), in: db) }
            #expect(value == nil)
        }
    }

    @Test("A nested transaction that throws undoes only its own writes")
    func nestedRollback() throws {
        struct Abort: Error {}
        try withEnvironment { env, db in
            try env.write { txn in
                try txn.put([1], forKey: key(1), in: db)
                #expect(throws: Abort.self) {
                    try txn.nested { child in
                        try child.put([2], forKey: key(2), in: db)
                        throw Abort()
                    }
                }
                try txn.nested { child in try child.put([3], forKey: key(3), in: db) }
            }
            let (one, two, three) = try env.read { txn in
                (try txn.get(key(1), in: db), try txn.get(key(2), in: db), try txn.get(key(3), in: db))
            }
            #expect(one == [1])
            #expect(two == nil)
            #expect(three == [3])
        }
    }

    @Test("A full map grows and the write is retried transparently")
    func mapGrows() throws {
        var options = Environment.Options()
        options.mapSize = 64 * 1024
        try withEnvironment(options) { env, db in
            let value = [UInt8](repeating: 7, count: 512)
            try env.write { txn in
                for i in 0..<2000 { try txn.put(value, forKey: key(UInt32(i)), in: db) }
            }
            #expect(env.mapSize > 64 * 1024)
            #expect(try env.read { try $0.count(of: db) } == 2000)
        }
    }

    @Test("Growing the map waits for the readers in every reader slot; a read with no free slot goes ahead meanwhile")
    func growthWaitsForSlots() throws {
        try withSmallMap { env, db throws in
            // Eight readers (one per slot) stay inside their reads until released.
            let inside = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            let seen = Atomic<Int>(0)
            let readers = (0..<8).map { _ in
                Thread {
                    let value = try? env.read { txn -> [UInt8]? in
                        inside.signal()
                        release.wait()
                        return try txn.get(key(0), in: db)
                    }
                    if value == [7] { seen.add(1, ordering: .relaxed) }
                }
            }
            for reader in readers { reader.start() }
            for _ in readers { inside.wait() }
            // Every slot is taken: this read takes a transaction of its own, under the resize lock.
            #expect(try env.read { txn in try txn.get(key(0), in: db) } == [7])
            // A write that must grow the map cannot change it while the readers are in their slots.
            let grown = Atomic<Bool>(false)
            let writer = Thread {
                try? putPadding(env, 1...400, in: db)
                grown.store(true, ordering: .sequentiallyConsistent)
            }
            writer.start()
            usleep(300_000)
            let grewEarly = grown.load(ordering: .sequentiallyConsistent)
            #expect(!grewEarly, "the map changed under live readers")
            #expect(env.mapSize == 64 * 1024)
            for _ in readers { release.signal() }
            while !writer.isFinished || readers.contains(where: { !$0.isFinished }) { usleep(1000) }
            let grew = grown.load(ordering: .sequentiallyConsistent)
            #expect(grew && env.mapSize > 64 * 1024)
            let sound = seen.load(ordering: .relaxed)
            #expect(sound == 8)
            #expect(try env.read { try $0.count(of: db) } == 401)
        }
    }

    @Test("Readers in more threads than there are slots read consistently while the map grows under them")
    func readsWhileGrowing() throws {
        try withSmallMap { env, db throws in
            let stop = Atomic<Bool>(false)
            let reads = Atomic<Int>(0)
            let wrong = Atomic<Int>(0)
            let readers = (0..<12).map { _ in
                Thread {
                    var last = 0
                    while !stop.load(ordering: .relaxed) {
                        let result = try? env.read { txn in (try txn.get(key(0), in: db), try txn.count(of: db)) }
                        guard let (value, count) = result, value == [7], count >= last else {
                            wrong.add(1, ordering: .relaxed)
                            continue
                        }
                        last = count
                        reads.add(1, ordering: .relaxed)
                    }
                }
            }
            for reader in readers { reader.start() }
            // The readers are reading before the map grows (on a busy machine they may start late).
            let deadline = ContinuousClock.now + .seconds(20)
            while reads.load(ordering: .relaxed) < readers.count, ContinuousClock.now < deadline { usleep(1000) }
            for batch: UInt32 in 0..<20 { try putPadding(env, batch * 50 + 1...batch * 50 + 50, in: db) }
            stop.store(true, ordering: .relaxed)
            while readers.contains(where: { !$0.isFinished }) { usleep(1000) }
            #expect(env.mapSize > 64 * 1024)
            let wrongReads = wrong.load(ordering: .relaxed), goodReads = reads.load(ordering: .relaxed)
            #expect(wrongReads == 0)
            #expect(goodReads > 0)
            #expect(try env.read { try $0.count(of: db) } == 1001)
        }
    }

    @Test("A thread's successive reads never go back to an older state while commits go on")
    func readsNeverGoBack() throws {
        // LMDB 0.9 can give a read transaction the snapshot of a later commit than its ID
        // names when the reader is held up while two commits complete; that thread's next
        // read then sees an older state. The layer checks each read's snapshot as it begins.
        try withEnvironment { env, db in
            let stop = Atomic<Bool>(false)
            let backwards = Atomic<Int>(0)
            let reads = Atomic<Int>(0)
            let failed = Atomic<Int>(0)
            let readers = (0..<12).map { _ in
                Thread {
                    var last = 0
                    while !stop.load(ordering: .relaxed) {
                        // A read that fails is counted, not skipped: a check that refused reads must not pass here.
                        guard let count = try? env.read({ try $0.count(of: db) }) else {
                            failed.add(1, ordering: .relaxed)
                            continue
                        }
                        reads.add(1, ordering: .relaxed)
                        if count < last { backwards.add(1, ordering: .relaxed) }
                        last = max(last, count)
                    }
                }
            }
            for reader in readers { reader.start() }
            // The readers are reading before the commits start (on a busy machine they may start late).
            let deadline = ContinuousClock.now + .seconds(20)
            while reads.load(ordering: .relaxed) < readers.count, ContinuousClock.now < deadline { usleep(1000) }
            let before = reads.load(ordering: .relaxed)
            for batch: UInt32 in 0..<200 { try putPadding(env, batch * 50 + 1...batch * 50 + 50, in: db) }
            let during = reads.load(ordering: .relaxed) - before
            stop.store(true, ordering: .relaxed)
            while readers.contains(where: { !$0.isFinished }) { usleep(1000) }
            let wentBack = backwards.load(ordering: .relaxed)
            #expect(wentBack == 0, "\(wentBack) reads saw an older state than the same thread had seen")
            #expect(failed.load(ordering: .relaxed) == 0, "reads failed")
            #expect(during > 0, "no read ran while the commits did")
            #expect(try env.read { try $0.count(of: db) } == 10_000)
        }
    }

    @Test("Copies made while other commits grow the map are whole, and the environment stays usable")
    func copiesWhileGrowing() throws {
        try withSmallMap { env, db throws in
            let done = Atomic<Bool>(false)
            let writer = Thread {
                for batch: UInt32 in 0..<40 { try? putPadding(env, batch * 50 + 1...batch * 50 + 50, in: db) }
                done.store(true, ordering: .sequentiallyConsistent)
            }
            writer.start()
            var copies = 0
            var failures: [String] = []
            let root = (NSTemporaryDirectory() as NSString).appendingPathComponent("lmdb-copies-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(atPath: root) }
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            while !done.load(ordering: .sequentiallyConsistent) || copies < 2 {
                let destination = root + "/\(copies)"
                try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: false)
                do {
                    try env.copy(to: destination, compact: copies % 2 == 0)
                    let copy = try Environment.open(path: destination)
                    let sound = try copy.read { txn in try txn.get(key(0), in: try txn.openDatabase(named: "test")) }
                    if sound != [7] { failures.append("copy \(copies) lacks the first record") }
                } catch {
                    failures.append("copy \(copies): \(error)")
                }
                copies += 1
            }
            while !writer.isFinished { usleep(1000) }
            #expect(failures.isEmpty, "\(failures.count) of \(copies) copies failed; first: \(failures.first ?? "")")
            #expect(env.mapSize > 64 * 1024)
            #expect(try env.read { try $0.count(of: db) } == 2001)
        }
    }

    @Test("A copy made inside a read of the same environment finishes while another thread waits to grow the map")
    func copyInsideReadDuringGrowth() throws {
        try withSmallMap { env, db throws in
            let root = (NSTemporaryDirectory() as NSString).appendingPathComponent("lmdb-copy-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(atPath: root) }
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let finished = DispatchSemaphore(value: 0)
            let copied = Atomic<Bool>(false)
            let reader = Thread {
                _ = try? env.read { _ in
                    // A write that must grow the map: its resize waits for this read to end.
                    let writer = Thread { try? putPadding(env, 1...400, in: db) }
                    writer.start()
                    usleep(200_000)
                    if (try? env.copy(to: root)) != nil { copied.store(true, ordering: .sequentiallyConsistent) }
                }
                finished.signal()
            }
            reader.start()
            let ended = finished.wait(timeout: .now() + 20) == .success
            #expect(ended, "the copy inside the read never finished (deadlocked with the resize)")
            let copiedInside = copied.load(ordering: .sequentiallyConsistent)
            #expect(copiedInside)
            if ended {
                // The growth goes ahead once the read has ended.
                let deadline = ContinuousClock.now + .seconds(20)
                while (try? env.read { try $0.count(of: db) }) != 401, ContinuousClock.now < deadline { usleep(10_000) }
                #expect(try env.read { try $0.count(of: db) } == 401)
            }
        }
    }

    @Test("At the maximum map size the write fails with MDB_MAP_FULL and commits nothing")
    func mapFullAtLimit() throws {
        var options = Environment.Options()
        options.mapSize = 64 * 1024
        options.maxMapSize = 128 * 1024
        try withEnvironment(options) { env, db in
            try env.write { txn in try txn.put([1], forKey: key(0), in: db) }
            let value = [UInt8](repeating: 7, count: 512)
            #expect(throws: LMDBError.mapFull) {
                try env.write { txn in
                    for i in 1..<2000 { try txn.put(value, forKey: key(UInt32(i)), in: db) }
                }
            }
            #expect(try env.read { try $0.count(of: db) } == 1)
            try env.write { txn in try txn.put([2], forKey: key(1), in: db) }
            #expect(try env.read { try $0.count(of: db) } == 2)
        }
    }

    @Test("Cursor seeks find neighbours in key order")
    func cursorSeeks() throws {
        try withEnvironment { env, db in
            try env.write { txn in for i: UInt32 in [10, 20, 30] { try txn.put([UInt8(i)], forKey: key(i), in: db) } }
            let found = try env.read { txn in
                try txn.withCursor(on: db) { cursor in
                    [
                        try cursor.seek(atOrAfter: key(15))?.value, try cursor.seek(atOrBefore: key(15))?.value,
                        try cursor.seek(atOrBefore: key(20))?.value, try cursor.seek(atOrBefore: key(5))?.value,
                        try cursor.seek(atOrAfter: key(31))?.value, try cursor.seek(atOrBefore: key(99))?.value,
                    ]
                }
            }
            #expect(found == [[20], [10], [20], nil, nil, [30]])
        }
    }

    @Test("Values are decoded in place with bounds checks")
    func valueReader() throws {
        try withEnvironment { env, db in
            try env.write { txn in try txn.put([0, 0, 1, 2, 9], forKey: key(7), in: db) }
            let (n, tail, overrun) = try env.read { txn in
                try txn.withValue(forKey: key(7), in: db) { reader -> (UInt32, UInt8, Bool) in
                    let n = try reader.u32()
                    let tail = try reader.u8()
                    let overrun = (try? reader.u8()) == nil
                    return (n, tail, overrun)
                }!
            }
            #expect(n == 258)
            #expect(tail == 9)
            #expect(overrun)
        }
    }
}
