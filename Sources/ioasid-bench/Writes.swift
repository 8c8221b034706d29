// Durable writes: one allocation per commit, 1,000 per commit, and group commit,
// each beside raw C puts with the same number of records per durable commit.

import Foundation
import IOASIDStore

/// What the store keeps per allocation in the `ids` database: an 11-byte record and its 4-byte seal.
let idRecord = idRecordBytes(set: 2)

extension Bench {
    /// Durable single allocation vs one raw `mdb_put` per durable commit, in alternating blocks of 50.
    func single() throws {
        let blocks = options.quick ? 10 : 150
        let raw = try RawEnvironment(path: fresh("raw-single"))
        let value = RawBytes(idRecord)
        let (store, set) = try openStore(fresh("store-single"))
        var rawSeconds = 0.0, storeSeconds = 0.0
        var next: UInt32 = 1
        let budget = Budget(minimum: blocks / 5, seconds: 30)
        var done = 0
        for block in 0..<blocks where budget.allows(block) {
            done += 1
            try alternate(block) {
                rawSeconds += try time {
                    for _ in 0..<50 {
                        try raw.commitPuts(next...next, value: value)
                        next += 1
                    }
                }
            } _: {
                storeSeconds += try time { for _ in 0..<50 { _ = try store.allocate(in: set) } }
            }
        }
        let n = Double(done * 50)
        report.rates("durable allocate, 1 per commit", store: n / storeSeconds, raw: n / rawSeconds,
                     rawWhat: "1 mdb_put (\(idRecord.count) B) per durable commit", floor: .atLeast(0.9))
    }

    /// 1,000 allocations per commit vs 1,000 raw `mdb_put`s per durable commit, alternating every 5 commits.
    func batch() throws {
        let blocks = options.quick ? 10 : 80
        let perBlock = 5
        let raw = try RawEnvironment(path: fresh("raw-batch"))
        let value = RawBytes(idRecord)
        let (store, set) = try openStore(fresh("store-batch"))
        var rawSeconds = 0.0, storeSeconds = 0.0
        var next: UInt32 = 1
        let budget = Budget(minimum: blocks / 4, seconds: 20)
        var done = 0
        for block in 0..<blocks where budget.allows(block) {
            done += 1
            try alternate(block) {
                rawSeconds += try time {
                    for _ in 0..<perBlock {
                        try raw.commitPuts(next..<next + 1000, value: value)
                        next += 1000
                    }
                }
            } _: {
                storeSeconds += try time {
                    for _ in 0..<perBlock { try store.write { tx in for _ in 0..<1000 { _ = try tx.allocate(in: set) } } }
                }
            }
        }
        let n = Double(done * perBlock * 1000)
        report.rates("allocate, 1,000 per commit", store: n / storeSeconds, raw: n / rawSeconds,
                     rawWhat: "1,000 mdb_put (\(idRecord.count) B, ascending keys) per durable commit", floor: .atLeast(0.5))
    }

    /// Group commit: N async callers allocating and freeing vs raw N puts per durable commit
    /// (the most a group of N callers can put into one commit), in alternating blocks; the
    /// callers once on Swift's default executor and once on the store's writer executor,
    /// both beside the same raw blocks.
    func group() async throws -> [GroupPoint] {
        let commitsPerBlock = options.quick ? 100 : 300
        let blocks = options.quick ? 4 : 24
        let value = RawBytes(idRecord)
        var points: [GroupPoint] = []
        for n in [1, 4, 16, 64] {
            let raw = try RawEnvironment(path: fresh("raw-group-\(n)"))
            let (store, set) = try openStore(fresh("store-group-\(n)"))
            // Check the commit counter: each one-call allocation is one commit.
            let check0 = try lastCommittedTxnID(store.path)
            for _ in 0..<5 { _ = try await store.allocate(in: set) }
            guard try lastCommittedTxnID(store.path) - check0 == 5 else {
                throw RawError(call: "commit counter: 5 allocations were not 5 commits", code: EINVAL)
            }
            var next: UInt32 = 1
            var rawSeconds = 0.0, rawOps = 0
            var pool = StoreRounds(), onWriter = StoreRounds()
            // Each caller does commitsPerBlock / 2 allocate+free pairs: N × commitsPerBlock
            // operations per block, as many as the raw block puts.
            let pairs = commitsPerBlock / 2
            _ = try await hammer(store, set, callers: n, pairs: 10, onWriter: false)
            _ = try await hammer(store, set, callers: n, pairs: 10, onWriter: true)
            let budget = Budget(minimum: 6, seconds: 30)
            for block in 0..<blocks where budget.allows(block) {
                // Even blocks: raw, pool callers, writer-executor callers; odd blocks the reverse.
                if block % 2 == 0 { rawSeconds += try rawPutBlock(raw, value, perCommit: n, commits: commitsPerBlock, next: &next) }
                for variant in block % 2 == 0 ? [false, true] : [true, false] {
                    let before = try lastCommittedTxnID(store.path)
                    let start = ContinuousClock.now
                    let ops = try await hammer(store, set, callers: n, pairs: pairs, onWriter: variant)
                    let elapsed = seconds(ContinuousClock.now - start)
                    let commits = Int(try lastCommittedTxnID(store.path) - before)
                    if variant { onWriter.add(ops, elapsed, commits) } else { pool.add(ops, elapsed, commits) }
                }
                if block % 2 == 1 { rawSeconds += try rawPutBlock(raw, value, perCommit: n, commits: commitsPerBlock, next: &next) }
                rawOps += n * commitsPerBlock
            }
            let rawRate = Double(rawOps) / rawSeconds
            let point = GroupPoint(callers: n, store: pool.rate, storeOnWriter: onWriter.rate, raw: rawRate,
                                   opsPerCommit: pool.perCommit, opsPerCommitOnWriter: onWriter.perCommit)
            points.append(point)
            let big = n >= 16
            let callers = n == 1 ? "1 async caller" : "\(n) async callers"
            report.rates("group commit, \(callers): allocate+free ops/s", store: point.store, raw: point.raw,
                         rawWhat: "\(n) mdb_put per durable commit", floor: big ? .atLeast(0.85) : nil)
            report.counts("group commit, \(callers): operations per commit", store: point.opsPerCommit, raw: Double(n),
                          rawWhat: "\(n) (the most a group of \(n) can share)", floor: big ? .atLeast(0.9) : nil)
            report.rates("group commit, \(callers) on the store's writer executor: allocate+free ops/s",
                         store: point.storeOnWriter, raw: point.raw,
                         rawWhat: "\(n) mdb_put per durable commit (the same raw blocks)", floor: big ? .atLeast(0.85) : nil)
            report.counts("group commit, \(callers) on the store's writer executor: operations per commit",
                          store: point.opsPerCommitOnWriter, raw: Double(n),
                          rawWhat: "\(n) (the most a group of \(n) can share)", floor: big ? .atLeast(0.9) : nil)
        }
        return points
    }
}

/// The store's side of one kind of group-commit caller, summed over its blocks.
struct StoreRounds {
    var operations = 0, seconds = 0.0, commits = 0
    mutating func add(_ operations: Int, _ seconds: Double, _ commits: Int) {
        self.operations += operations
        self.seconds += seconds
        self.commits += commits
    }
    var rate: Double { Double(operations) / seconds }
    var perCommit: Double { Double(operations) / Double(max(1, commits)) }
}

/// Seconds for `commits` durable commits of `perCommit` raw puts each, keys ascending from `next`.
func rawPutBlock(_ raw: RawEnvironment, _ value: RawBytes, perCommit: Int, commits: Int, next: inout UInt32) throws -> Double {
    var key = next
    defer { next = key }
    return try time {
        for _ in 0..<commits {
            try raw.commitPuts(key..<key + UInt32(perCommit), value: value)
            key += UInt32(perCommit)
        }
    }
}

/// One group-commit measurement: the store with callers on the default executor and on
/// its writer executor, and raw N puts per commit.
struct GroupPoint {
    let callers: Int
    let store: Double
    let storeOnWriter: Double
    let raw: Double
    let opsPerCommit: Double
    let opsPerCommitOnWriter: Double
}

/// The last committed transaction ID of the LMDB environment at `path`, read with `pread`
/// from its two meta pages (the greater `mm_txnid`; LMDB 0.9 on a 64-bit machine). Every
/// durable write commit adds exactly 1, so the difference over a block is the commits in it.
///
/// (The `FaultInjection` hook would be the natural counter, but with a hook installed every
/// hooked LMDB call grows the hook's chain of reabstraction thunks by one: each call gets
/// slower, and after some 100,000 calls the writer thread overflows its stack. Reported; until
/// that is fixed, the bench reads what LMDB itself records.)
func lastCommittedTxnID(_ path: String) throws -> UInt64 {
    let fd = open(path + "/data.mdb", O_RDONLY)
    guard fd >= 0 else { throw RawError(call: "open \(path)/data.mdb", code: errno) }
    defer { close(fd) }
    func meta(at offset: Int) throws -> (pageSize: UInt32, txnid: UInt64) {
        var page = [UInt8](repeating: 0, count: 160)
        let n = page.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 160, off_t(offset)) }
        guard n == 160 else { throw RawError(call: "pread meta page", code: n < 0 ? errno : EIO) }
        return try page.withUnsafeBytes { p in
            // Page header 16 bytes; MDB_meta: magic u32, version u32, address, mapsize, dbs[2] (48 B each), last_pg, txnid.
            guard p.loadUnaligned(fromByteOffset: 16, as: UInt32.self) == 0xBEEF_C0DE else {
                throw RawError(call: "meta page magic", code: EINVAL)
            }
            return (p.loadUnaligned(fromByteOffset: 40, as: UInt32.self), p.loadUnaligned(fromByteOffset: 144, as: UInt64.self))
        }
    }
    let first = try meta(at: 0)
    let second = try meta(at: Int(first.pageSize))
    return max(first.txnid, second.txnid)
}

/// `callers` tasks each doing `pairs` allocate+free pairs through the group-commit writer,
/// on Swift's default executor or (`onWriter`) on the store's writer executor; returns the
/// operations done (2 per pair).
func hammer(_ store: IOASIDStore, _ set: SetID, callers: Int, pairs: Int, onWriter: Bool) async throws -> Int {
    try await withThrowingTaskGroup(of: Int.self) { group in
        for _ in 0..<callers {
            group.addTask(executorPreference: onWriter ? store.writerExecutor : nil) {
                for _ in 0..<pairs {
                    let id = try await store.allocate(in: set)
                    try await store.free(id, in: set)
                }
                return 2 * pairs
            }
        }
        return try await group.reduce(0, +)
    }
}
