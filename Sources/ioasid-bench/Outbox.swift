// The outbox: durable allocation with and without a subscriber, and draining events
// with acknowledgements beside a raw C cursor read + delete per batch.

import CLMDB
import Foundation
import IOASIDStore

extension Bench {
    /// Blocks of 50 commits rotate between raw C, a store with no subscriber and a store
    /// with one, so that drift in flush latency falls on all three alike.
    func outbox() throws {
        let blocks = options.quick ? 10 : 100
        let raw = try RawEnvironment(path: fresh("raw-outbox"))
        let value = RawBytes(idRecord)
        let (plain, plainSet) = try openStore(fresh("store-nosub"))
        let (watched, watchedSet) = try openStore(fresh("store-sub"))
        try watched.subscribe("iommu")
        var rawSeconds = 0.0, noneSeconds = 0.0, oneSeconds = 0.0
        var next: UInt32 = 1
        let budget = Budget(minimum: blocks / 4, seconds: 30)
        var done = 0
        for block in 0..<blocks where budget.allows(block) {
            done += 1
            let steps: [() throws -> Void] = [
                {
                    rawSeconds += try time {
                        for _ in 0..<50 {
                            try raw.commitPuts(next...next, value: value)
                            next += 1
                        }
                    }
                },
                { noneSeconds += try time { for _ in 0..<50 { _ = try plain.allocate(in: plainSet) } } },
                { oneSeconds += try time { for _ in 0..<50 { _ = try watched.allocate(in: watchedSet) } } },
            ]
            for i in 0..<steps.count { try steps[(i + block) % steps.count]() }
        }
        let commits = Double(done * 50)
        report.rates("durable allocate with 1 subscriber, 1 per commit", store: commits / oneSeconds, raw: commits / rawSeconds,
                     rawWhat: "1 mdb_put (\(idRecord.count) B) per durable commit")
        report.compare("durable allocate: 1 subscriber vs none (store, rate)", a: rate(commits / oneSeconds), b: rate(commits / noneSeconds),
                       quotient: noneSeconds / oneSeconds)
    }

    /// Read a batch of 1,000 pending events and acknowledge it (one durable commit per batch),
    /// vs a raw C cursor read of 1,000 records and their `mdb_del` in one durable commit.
    func drain() throws {
        let events = options.quick ? 50_000 : 500_000
        let batch = 1000
        let (store, set) = try openStore(fresh("store-drain"))
        try store.subscribe("agent")
        var made = 0
        while made < events {
            let n = min(10_000, events - made)
            try store.write { tx in for _ in 0..<n { _ = try tx.allocate(in: set) } }
            made += n
        }
        // An ALLOC event (39 bytes with the bench's token and the seal) under an 8-byte sequence key.
        let raw = try RawEnvironment(path: fresh("raw-drain"), databases: ["events"])
        let dbi = try raw.dbi("events")
        let value = RawBytes(allocEventBytes)
        var sequence: UInt64 = 1
        while sequence <= UInt64(events) {
            try raw.write { txn in
                var v = value.val
                for _ in 0..<10_000 {
                    var k = sequence.bigEndian
                    let rc = withUnsafeMutableBytes(of: &k) { kb -> Int32 in
                        var mk = MDB_val(mv_size: 8, mv_data: kb.baseAddress)
                        return mdb_put(txn, dbi, &mk, &v, 0)
                    }
                    try check(rc, "mdb_put")
                    sequence += 1
                }
            }
        }
        /// One store batch: read up to 1,000 pending events, acknowledge them; false when none were left.
        func storeBatch() throws -> Bool {
            let pending = try store.pendingEvents(for: "agent", limit: batch)
            guard let last = pending.last else { return false }
            try store.acknowledge("agent", through: last.sequence)
            return true
        }
        /// One raw batch: a cursor read of up to 1,000 records, then their `mdb_del` in one durable commit.
        var touched = 0
        func rawBatch() throws -> Bool {
            var keys: [UInt64] = []
            try raw.scan("events") { key, value in
                keys.append(UInt64(bigEndian: key.loadUnaligned(as: UInt64.self)))
                touched &+= Int(value[0])
                return keys.count < batch
            }
            if keys.isEmpty { return false }
            try raw.write { txn in
                for key in keys {
                    var k = key.bigEndian
                    let rc = withUnsafeMutableBytes(of: &k) { kb -> Int32 in
                        var mk = MDB_val(mv_size: 8, mv_data: kb.baseAddress)
                        return mdb_del(txn, dbi, &mk, nil)
                    }
                    try check(rc, "mdb_del")
                }
            }
            return true
        }
        // Alternate blocks of 25 batches between the two until both are drained.
        var storeSeconds = 0.0, rawSeconds = 0.0
        var storeMore = true, rawMore = true, block = 0
        while storeMore || rawMore {
            try alternate(block) {
                storeSeconds += try time { for _ in 0..<25 where storeMore { storeMore = try storeBatch() } }
            } _: {
                rawSeconds += try time { for _ in 0..<25 where rawMore { rawMore = try rawBatch() } }
            }
            block += 1
        }
        let left = try store.rawDump()["events"]?.count ?? -1
        guard left == 0 else { throw RawError(call: "the outbox still holds \(left) events", code: EINVAL) }
        if touched == -1 { say("") }
        report.rates("drain + acknowledge events, 1,000 per batch", store: Double(events) / storeSeconds, raw: Double(events) / rawSeconds,
                     rawWhat: "C cursor read of 1,000 records (\(allocEventBytes.count) B) + their mdb_del in one durable commit")
    }
}
