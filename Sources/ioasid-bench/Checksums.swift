// What the CRC32C seals on every record cost: the store with checksums against
// the same store with them skipped (Sealing.benchmarkSkipsChecksums), in
// alternating blocks, each row the median of its blocks. A store-vs-itself
// comparison (table 2).

import IOASIDStore
import LMDB

extension Bench {
    func checksums() throws {
        let rounds = options.quick ? 4 : 12
        let populated: UInt32 = 100_000
        let lookups = options.quick ? 200_000 : 1_000_000
        func setUp(_ name: String, skip: Bool) throws -> (IOASIDStore, SetID) {
            Sealing.benchmarkSkipsChecksums = skip
            defer { Sealing.benchmarkSkipsChecksums = false }
            let (store, set) = try openStore(fresh(name))
            try store.write { tx in for g in 1...populated { _ = try tx.allocate(in: set, guest: g) } }
            return (store, set)
        }
        let (sealed, sealedSet) = try setUp("store-sealed", skip: false)
        let (plain, plainSet) = try setUp("store-unsealed", skip: true)
        var random = SystemRandomNumberGenerator()
        let order = (0..<lookups).map { _ in UInt32.random(in: 1...populated, using: &random) }
        var sink: UInt32 = 0
        // Per block, so a slow flush in one block cannot tip the comparison: medians of the blocks.
        var find: [Bool: [Double]] = [:], batch: [Bool: [Double]] = [:], single: [Bool: [Double]] = [:]
        var allocated: [Bool: [IOASID]] = [:]
        let singles = options.quick ? 50 : 200
        for round in 0..<rounds {
            for skip in round % 2 == 0 ? [false, true] : [true, false] {
                Sealing.benchmarkSkipsChecksums = skip
                defer { Sealing.benchmarkSkipsChecksums = false }
                let store = skip ? plain : sealed
                let set = skip ? plainSet : sealedSet
                find[skip, default: []].append(try time {
                    try store.read { tx in for id in order { sink &+= try tx.find(IOASID(id), in: set).guest ?? 0 } }
                })
                // 1,000 allocations per commit, then freed again (both durable), so every round starts alike.
                var ids: [IOASID] = []
                batch[skip, default: []].append(try time { try store.write { tx in for _ in 0..<1000 { ids.append(try tx.allocate(in: set)) } } })
                try store.write { tx in for id in ids { try tx.free(id, in: set) } }
                allocated[skip] = ids
                // Durable single allocations, one commit each, freed again in one commit.
                var one: [IOASID] = []
                single[skip, default: []].append(try time { for _ in 0..<singles { one.append(try store.allocate(in: set)) } })
                try store.write { tx in for id in one { try tx.free(id, in: set) } }
            }
        }
        guard sink != 0, allocated[false] == allocated[true] else {
            throw RawError(call: "checksum benchmark: the two stores did not behave alike", code: 22)
        }
        func row(_ name: String, _ samples: [Bool: [Double]], per: Int) {
            let on = median(samples[false] ?? []), off = median(samples[true] ?? [])
            report.compare(name, a: rate(Double(per) / on), b: rate(Double(per) / off), quotient: off / on)
        }
        row("find in one read txn: CRC32C seals vs none (rate)", find, per: lookups)
        row("allocate, 1,000 per commit: CRC32C seals vs none (rate)", batch, per: 1000)
        row("allocate, durable, one per commit: CRC32C vs none (rate)", single, per: singles)
    }
}
