// What the CRC32C seals on every record cost: the store with checksums against
// the same store with them skipped (Sealing.benchmarkSkipsChecksums), in
// alternating blocks. A store-vs-itself comparison (table 2).

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
        var findOn = 0.0, findOff = 0.0, batchOn = 0.0, batchOff = 0.0
        var freshOn: [IOASID] = [], freshOff: [IOASID] = []
        for round in 0..<rounds {
            for skip in round % 2 == 0 ? [false, true] : [true, false] {
                Sealing.benchmarkSkipsChecksums = skip
                defer { Sealing.benchmarkSkipsChecksums = false }
                let store = skip ? plain : sealed
                let set = skip ? plainSet : sealedSet
                let find = try time {
                    try store.read { tx in for id in order { sink &+= try tx.find(IOASID(id), in: set).guest ?? 0 } }
                }
                // 1,000 allocations per commit, then freed again (both durable), so every round starts alike.
                var ids: [IOASID] = []
                let batch = try time { try store.write { tx in for _ in 0..<1000 { ids.append(try tx.allocate(in: set)) } } }
                try store.write { tx in for id in ids { try tx.free(id, in: set) } }
                if skip { findOff += find; batchOff += batch; freshOff = ids } else { findOn += find; batchOn += batch; freshOn = ids }
            }
        }
        guard sink != 0, freshOn == freshOff else {
            throw RawError(call: "checksum benchmark: the two stores did not behave alike", code: 22)
        }
        let n = Double(rounds * lookups)
        report.compare("find in one read txn: CRC32C seals vs none (rate)", a: rate(n / findOn), b: rate(n / findOff), quotient: findOff / findOn)
        let m = Double(rounds * 1000)
        report.compare("allocate, 1,000 per commit: CRC32C seals vs none (rate)", a: rate(m / batchOn), b: rate(m / batchOff), quotient: batchOff / batchOn)
    }
}
