// Durable allocation latency at 0%, 50%, 99% and 99.9% fill of 2^20, beside raw C
// single-put commits into a B-tree holding the same keys; plus what the store does
// against itself at those fill levels (1,000 allocations per commit, verify, open).

import Foundation
import IOASIDStore

extension Bench {
    func latency() throws {
        let capacity: UInt32 = 1 << 20
        let samples = options.quick ? 300 : 2000
        let minimum = options.quick ? 200 : 500
        let budget = options.quick ? 10.0 : 25.0  // seconds per fill level, once `minimum` samples are in
        let value = RawBytes(idRecord)

        /// One durable allocation of the lowest free ID, timed; freed again in a commit that is not timed.
        func storeSample(_ store: IOASIDStore, _ set: SetID, _ lowestFree: UInt32) throws -> Double {
            var id = IOASID(0)
            let t = try time { id = try store.allocate(in: set) }
            guard id.rawValue == lowestFree else {
                throw RawError(call: "store allocated \(id), not the lowest free ID \(lowestFree)", code: EINVAL)
            }
            try store.free(id, in: set)
            return t
        }
        /// One raw durable commit of one put of the same key, timed; deleted again in a commit that is not timed.
        func rawSample(_ raw: RawEnvironment, _ key: UInt32) throws -> Double {
            let t = try time { try raw.commitPuts(key...key, value: value) }
            try raw.commitDeletes(key...key)
            return t
        }

        /// Latencies at one fill level, sampled in rotation with the empty store and B-tree
        /// (so that the 0% figures come from the same stretch of time as each level's):
        /// store at this fill, raw at this fill, store empty, raw empty.
        struct Level { var store: [Double] = [], raw: [Double] = [], emptyStore: [Double] = [], emptyRaw: [Double] = [] }
        let (empty, emptySet) = try openStore(fresh("store-latency-empty"), capacity: capacity)
        let emptyRaw = try RawEnvironment(path: fresh("raw-latency-empty"))
        func level(_ store: IOASIDStore, _ set: SetID, _ raw: RawEnvironment, lowestFree: UInt32) throws -> Level {
            var l = Level()
            let steps: [(inout Level) throws -> Void] = [
                { $0.store.append(try storeSample(store, set, lowestFree)) },
                { $0.raw.append(try rawSample(raw, lowestFree)) },
                { $0.emptyStore.append(try storeSample(empty, emptySet, 1)) },
                { $0.emptyRaw.append(try rawSample(emptyRaw, 1)) },
            ]
            var warm = Level()
            for i in 0..<50 { for j in 0..<4 { try steps[(i + j) % 4](&warm) } }
            let start = ContinuousClock.now
            for i in 0..<samples {
                if i >= minimum && seconds(ContinuousClock.now - start) > budget { break }
                for j in 0..<4 { try steps[(i + j) % 4](&l) }
            }
            return l
        }

        func row(_ label: String, _ store: [Double], _ raw: [Double], p99Floor: Floor?) {
            report.times("durable allocate p50 latency, \(label) fill", store: percentile(store, 0.5), raw: percentile(raw, 0.5),
                         rawWhat: "1 mdb_put per durable commit into a B-tree with the same keys, p50 of \(raw.count)", format: micros)
            report.times("durable allocate p99 latency, \(label) fill", store: percentile(store, 0.99), raw: percentile(raw, 0.99),
                         rawWhat: "same, p99", floor: p99Floor, format: micros)
        }

        // Full: every ID but the last allocated; the raw B-tree holds the same keys.
        let path = fresh("store-latency-full")
        var levels: [(String, Level)] = []
        do {
            let (full, set) = try openStore(path, capacity: capacity)
            let last = capacity - 2
            let fillSeconds = try time {
                var done: UInt32 = 0
                while done < last {
                    let batch = min(100_000, last - done)
                    try full.write { tx in for _ in 0..<batch { _ = try tx.allocate(in: set) } }
                    done += batch
                }
            }
            let raw = try RawEnvironment(path: fresh("raw-latency-full"))
            let rawFill = try time { try raw.fill(Array(1...last), value: value) }
            say(String(format: "  filled the store with %d IDs in %.1f s (raw B-tree: %.1f s)", last, fillSeconds, rawFill))

            var verification: VerificationReport?
            let verifySeconds = try time { verification = try full.verify() }
            guard let verified = verification, verified.isClean else {
                throw RawError(call: "the full store does not verify", code: EINVAL)
            }
            report.figure("verify a store of \(verified.idsChecked) IDs", secs(verifySeconds))

            // Free the same random IDs in both, in three steps: 99.9%, 99%, 50% full.
            var random = SystemRandomNumberGenerator()
            var freed = Set<UInt32>()
            for (label, fraction) in [("99.9%", 0.001), ("99%", 0.01), ("50%", 0.5)] {
                let target = Int(Double(capacity) * fraction)
                var batch: [UInt32] = []
                while freed.count < target {
                    let id = UInt32.random(in: 1...last, using: &random)
                    if freed.insert(id).inserted { batch.append(id) }
                }
                batch.sort()
                try full.write { tx in for id in batch { try tx.free(IOASID(id), in: set) } }
                try raw.commitDeletes(batch)
                let l = try level(full, set, raw, lowestFree: freed.min() ?? capacity - 1)
                levels.append((label, l))
                if label == "99%" {
                    try thousandAtFill(full, set, raw, holes: freed.sorted(), emptyStore: (empty, emptySet))
                }
            }
        }
        // Table 1: 0% pooled over the three stretches, then each level.
        row("0%", levels.flatMap(\.1.emptyStore), levels.flatMap(\.1.emptyRaw), p99Floor: nil)
        for (label, l) in levels.reversed() {
            row(label, l.store, l.raw, p99Floor: label == "99.9%" ? .timeAtMost(1.1) : nil)
        }
        // Table 2: each level against the empty store sampled in the same stretch.
        for (label, l) in levels.reversed() {
            compare("durable allocate p50 latency: \(label) fill vs 0% (store, same stretch)", percentile(l.store, 0.5), percentile(l.emptyStore, 0.5))
            compare("durable allocate p99 latency: \(label) fill vs 0% (store, same stretch)", percentile(l.store, 0.99), percentile(l.emptyStore, 0.99))
        }

        // Open time of the store (capacity 2^20, now half full), from scratch each time.
        var opens: [Double] = []
        for _ in 0..<(options.quick ? 5 : 20) {
            var reopened: IOASIDStore?
            opens.append(try time { reopened = try IOASIDStore(path: path, options: storeOptions(capacity: capacity)) })
            _ = try reopened?.capacity()
            reopened = nil
        }
        report.figure("open a store of capacity 2^20, 50% full (median of \(opens.count))", millis(median(opens)))
    }

    private func compare(_ name: String, _ a: Double, _ b: Double) {
        report.compare(name, a: micros(a), b: micros(b), quotient: a / b)
    }

    /// 1,000 allocations in one commit at 99% fill (each takes a scattered hole), against an
    /// empty store, and against raw C puts of the same 1,000 lowest holes in one commit.
    private func thousandAtFill(_ full: IOASIDStore, _ set: SetID, _ raw: RawEnvironment, holes: [UInt32],
                                emptyStore: (IOASIDStore, SetID)) throws {
        let perRound = 1000
        let value = RawBytes(idRecord)
        let lowest = Array(holes.prefix(perRound))
        func storeRound(_ store: IOASIDStore, _ set: SetID) throws -> Double {
            var taken: [IOASID] = []
            taken.reserveCapacity(perRound)
            let seconds = try time { try store.write { tx in for _ in 0..<perRound { taken.append(try tx.allocate(in: set)) } } }
            try store.write { tx in for id in taken { try tx.free(id, in: set) } }
            return Double(perRound) / seconds
        }
        func rawRound() throws -> Double {
            let seconds = try time { try raw.commitPuts(lowest, value: value) }
            try raw.commitDeletes(lowest)
            return Double(perRound) / seconds
        }
        var fullRates: [Double] = [], emptyRates: [Double] = [], rawRates: [Double] = []
        _ = try storeRound(full, set)
        _ = try storeRound(emptyStore.0, emptyStore.1)
        _ = try rawRound()
        for round in 0..<rounds * 2 {
            try alternate(round) {
                fullRates.append(try storeRound(full, set))
            } _: {
                rawRates.append(try rawRound())
            }
            emptyRates.append(try storeRound(emptyStore.0, emptyStore.1))
        }
        report.rates("1,000 allocations per commit at 99% fill", store: median(fullRates), raw: median(rawRates),
                     rawWhat: "1,000 mdb_put into the same 1,000 holes, one durable commit")
        report.compare("1,000 allocations per commit: 99% fill vs empty (store)", a: rate(median(fullRates)), b: rate(median(emptyRates)),
                       quotient: median(fullRates) / median(emptyRates))
    }
}
