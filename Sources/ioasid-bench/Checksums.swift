// What the CRC32C seals on every record cost: the store with checksums against
// the same store with them skipped (Sealing.benchmarkSkipsChecksums), in
// alternating blocks; each ratio is the median of the rounds' paired ratios
// (rates the medians of the blocks). A store-vs-itself comparison (table 2).

import IOASIDStore
import LMDB

extension Bench {
    func checksums() throws {
        let rounds = options.quick ? 2 : 10
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
        // Rounds alternate which side goes first; each row is the median of the
        // rounds' paired ratios, so drift in flush time between rounds cancels.
        var find: [Double] = [], batch: [Double] = [], single: [Double] = []
        var rates: [String: [Bool: [Double]]] = [:]
        var allocated: [Bool: [IOASID]] = [:]
        let singles = options.quick ? 50 : 100
        for round in 0..<rounds * 2 {
            var seconds: [String: [Bool: Double]] = [:]
            for skip in round % 2 == 0 ? [false, true] : [true, false] {
                Sealing.benchmarkSkipsChecksums = skip
                defer { Sealing.benchmarkSkipsChecksums = false }
                // Lookups read the sealed store both ways (checking seals or not):
                // the same pages, so only the check differs.
                seconds["find", default: [:]][skip] = try time {
                    try sealed.read { tx in for id in order { sink &+= try tx.find(IOASID(id), in: sealedSet).guest ?? 0 } }
                }
                let store = skip ? plain : sealed
                let set = skip ? plainSet : sealedSet
                // 1,000 allocations per commit, then freed again (both durable), so every round starts alike.
                var ids: [IOASID] = []
                seconds["batch", default: [:]][skip] = try time { try store.write { tx in for _ in 0..<1000 { ids.append(try tx.allocate(in: set)) } } }
                try store.write { tx in for id in ids { try tx.free(id, in: set) } }
                allocated[skip] = ids
                // Durable single allocations, one commit each, freed again in one commit.
                var one: [IOASID] = []
                seconds["single", default: [:]][skip] = try time { for _ in 0..<singles { one.append(try store.allocate(in: set)) } }
                try store.write { tx in for id in one { try tx.free(id, in: set) } }
            }
            for (name, pair) in seconds {
                guard let on = pair[false], let off = pair[true] else { continue }
                rates[name, default: [:]][false, default: []].append(on)
                rates[name, default: [:]][true, default: []].append(off)
                // Rate with seals over rate without: off-time over on-time.
                switch name {
                case "find": find.append(off / on)
                case "batch": batch.append(off / on)
                default: single.append(off / on)
                }
            }
        }
        guard sink != 0, allocated[false] == allocated[true] else {
            throw RawError(call: "checksum benchmark: the two stores did not behave alike", code: 22)
        }
        func row(_ name: String, _ key: String, _ ratios: [Double], per: Int) {
            let on = median(rates[key]?[false] ?? []), off = median(rates[key]?[true] ?? [])
            report.compare(name, a: rate(Double(per) / on), b: rate(Double(per) / off), quotient: median(ratios))
        }
        row("find in one read txn: seals checked vs not (rate)", "find", find, per: lookups)
        row("allocate, 1,000 per commit: CRC32C seals vs none (rate)", "batch", batch, per: 1000)
        row("allocate, durable, one per commit: CRC32C vs none (rate)", "single", single, per: singles)
    }
}
