// ioasid-bench: store operations measured against raw LMDB in the same run.
//
//   ioasid-bench [--quick] [--dir DIR]
//
// Every figure is the median of several rounds; store and raw rounds alternate
// so that drift in the machine affects both alike. Ratios > 1 mean the store
// is faster than the raw baseline. Raw baselines use the same LMDB calls
// (through the thin `LMDB` layer) without any store logic.

import Foundation
import IOASIDStore
import LMDB

// MARK: Harness

struct Options {
    var quick = false
    var dir = NSTemporaryDirectory()
    var only: String?
    var keep = false
}

var options = Options()
var arguments = CommandLine.arguments.dropFirst()
while let arg = arguments.popFirst() {
    switch arg {
    case "--quick": options.quick = true
    case "--dir": options.dir = arguments.popFirst() ?? options.dir
    case "--only": options.only = arguments.popFirst()
    case "--keep": options.keep = true
    default:
        FileHandle.standardError.write(Data("usage: ioasid-bench [--quick] [--dir DIR] [--only NAME]\n".utf8))
        exit(64)
    }
}

let scratch = (options.dir as NSString).appendingPathComponent("ioasid-bench-\(getpid())")
try? FileManager.default.removeItem(atPath: scratch)
try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
defer { if !options.keep { try? FileManager.default.removeItem(atPath: scratch) } }
var counter = 0
@MainActor func freshPath(_ name: String) -> String {
    counter += 1
    return (scratch as NSString).appendingPathComponent("\(name)-\(counter)")
}

/// Runs `body` `n` times and returns the elapsed seconds.
func time(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

struct Row {
    let name: String
    let store: String
    let raw: String
    let ratio: Double?
    let floor: String
    let verdict: String
}
var rows: [Row] = []

func rate(_ x: Double) -> String {
    if x >= 1e6 { return String(format: "%.2fM/s", x / 1e6) }
    if x >= 1e3 { return String(format: "%.1fk/s", x / 1e3) }
    return String(format: "%.0f/s", x)
}

@MainActor func record(_ name: String, store: Double, raw: Double, floor: Double?, format: (Double) -> String = rate) {
    let ratio = store / raw
    let floorText = floor.map { String(format: "≥ %.2f×", $0) } ?? "—"
    let verdict = floor.map { ratio >= $0 ? "meets" : "BELOW" } ?? ""
    rows.append(Row(name: name, store: format(store), raw: format(raw), ratio: ratio, floor: floorText, verdict: verdict))
    print(String(format: "  %-44@ store %12@  raw %12@  ratio %6.2f×  %@", name as NSString, format(store) as NSString, format(raw) as NSString, ratio, verdict as NSString))
}

@MainActor func shouldRun(_ name: String) -> Bool { options.only.map { name.contains($0) } ?? true }

let rounds = options.quick ? 3 : 5

func key(_ i: UInt32) -> [UInt8] {
    [UInt8(truncatingIfNeeded: i >> 24), UInt8(truncatingIfNeeded: i >> 16), UInt8(truncatingIfNeeded: i >> 8), UInt8(truncatingIfNeeded: i)]
}
let rawValue = [UInt8](repeating: 0xab, count: 16)

func openRaw(_ path: String) throws -> (Environment, Database) {
    let env = try Environment.open(path: path)
    let db = try env.openDatabase(named: "bench", create: true)
    return (env, db)
}

/// Times `count` raw durable commits of one put each, with ascending keys from `next`.
func rawSingleCommits(_ env: Environment, _ db: Database, _ count: Int, from next: inout UInt32) throws -> Double {
    var key32 = next
    defer { next = key32 }
    return try time {
        for _ in 0..<count {
            try env.write { txn in _ = try txn.put(rawValue, forKey: key(key32), in: db) }
            key32 += 1
        }
    }
}

/// Sorted latencies of `n` durable one-call allocations in each of two stores, sampled
/// alternately so that disk noise hits both alike; each ID is freed again to keep the fill.
func interleavedLatencies(_ a: (IOASIDStore, SetID), _ b: (IOASIDStore, SetID), _ n: Int) throws -> ([Double], [Double]) {
    var first: [Double] = [], second: [Double] = []
    for _ in 0..<n {
        for (index, (store, set)) in [a, b].enumerated() {
            var id: IOASID = 0
            let sample = try time { id = try store.allocate(in: set) }
            if index == 0 { first.append(sample) } else { second.append(sample) }
            try store.free(id, in: set)
        }
    }
    return (first.sorted(), second.sorted())
}

func openStore(_ path: String, capacity: UInt32 = 1 << 21) throws -> (IOASIDStore, SetID) {
    var o = IOASIDStore.Options()
    o.capacity = capacity
    o.systemQuota = 1
    let store = try IOASIDStore(path: path, options: o)
    let set = try store.createSet(token: "vm:bench", quota: capacity - 2)
    return (store, set)
}

print("ioasid-bench: \(rounds) rounds per figure, medians; scratch \(scratch)")

// MARK: 1. Durable single allocation per commit vs one raw put per commit

if shouldRun("single") {
    // Raw and store commits alternate in blocks of 50, so that drift in the disk's
    // flush latency falls on both alike; the figure is the total over all blocks.
    let blocks = options.quick ? 10 : 40
    let (env, db) = try openRaw(freshPath("raw-single"))
    let (store, set) = try openStore(freshPath("store-single"))
    var rawSeconds = 0.0, storeSeconds = 0.0
    var next: UInt32 = 1
    for _ in 0..<blocks {
        rawSeconds += try rawSingleCommits(env, db, 50, from: &next)
        storeSeconds += try time { for _ in 0..<50 { _ = try store.allocate(in: set) } }
    }
    let n = Double(blocks * 50)
    record("durable allocate, 1 per commit", store: n / storeSeconds, raw: n / rawSeconds, floor: 0.8)
}

// MARK: 2. 1,000 allocations per commit vs 1,000 raw puts per commit

if shouldRun("batch") {
    let commits = options.quick ? 20 : 100
    var storeRates: [Double] = []
    var rawRates: [Double] = []
    for _ in 0..<rounds {
        let (env, db) = try openRaw(freshPath("raw-batch"))
        var next: UInt32 = 1
        let rawSeconds = try time {
            for _ in 0..<commits {
                try env.write { txn in
                    for _ in 0..<1000 {
                        _ = try txn.put(rawValue, forKey: key(next), in: db)
                        next += 1
                    }
                }
            }
        }
        rawRates.append(Double(commits * 1000) / rawSeconds)
        let (store, set) = try openStore(freshPath("store-batch"))
        let storeSeconds = try time {
            for _ in 0..<commits {
                try store.write { tx in for _ in 0..<1000 { _ = try tx.allocate(in: set) } }
            }
        }
        storeRates.append(Double(commits * 1000) / storeSeconds)
    }
    record("allocate, 1,000 per commit", store: median(storeRates), raw: median(rawRates), floor: nil)
    let absolute = median(storeRates)
    rows.append(Row(name: "  (floor: ≥ 100,000 allocations/s)", store: rate(absolute), raw: "", ratio: nil, floor: "≥ 100k/s", verdict: absolute >= 100_000 ? "meets" : "BELOW"))
}

// MARK: 3. find vs raw mdb_get

if shouldRun("find") {
    let populated = 100_000
    let lookups = options.quick ? 200_000 : 1_000_000
    let (env, db) = try openRaw(freshPath("raw-find"))
    try env.write { txn in for i in 1...UInt32(populated) { _ = try txn.put(rawValue, forKey: key(i), in: db) } }
    let (store, set) = try openStore(freshPath("store-find"))
    try store.write { tx in for _ in 0..<populated { _ = try tx.allocate(in: set, data: [UInt8](repeating: 0xab, count: 4)) } }
    var rng = SystemRandomNumberGenerator()
    let order = (0..<lookups).map { _ in UInt32.random(in: 1...UInt32(populated), using: &rng) }
    var batchStore: [Double] = [], batchRaw: [Double] = [], oneStore: [Double] = [], oneRaw: [Double] = []
    let single = lookups / 10
    for _ in 0..<rounds {
        batchRaw.append(Double(lookups) / (try time {
            try env.read { txn in
                for id in order { guard try txn.withValue(forKey: key(id), in: db, { $0.remaining }) != nil else { fatalError("raw key missing") } }
            }
        }))
        batchStore.append(Double(lookups) / (try time {
            try store.read { tx in for id in order { _ = try tx.find(IOASID(id), in: set) } }
        }))
        oneRaw.append(Double(single) / (try time {
            for id in order.prefix(single) { _ = try env.read { txn in try txn.withValue(forKey: key(id), in: db) { $0.remaining } } }
        }))
        oneStore.append(Double(single) / (try time {
            for id in order.prefix(single) { _ = try store.find(IOASID(id), in: set) }
        }))
    }
    record("find(id, in:) in one read transaction", store: median(batchStore), raw: median(batchRaw), floor: 0.5)
    record("find(id, in:) one call each (own txn)", store: median(oneStore), raw: median(oneRaw), floor: 0.5)
}

// MARK: 4. Allocation at 99% fill of 2^20 vs an empty store

if shouldRun("fill") {
    let capacity: UInt32 = 1 << 20
    let usable = Int(capacity - 1)
    var o = IOASIDStore.Options()
    o.capacity = capacity
    o.systemQuota = 1
    // The full store: every ID allocated, then a random 1% freed, leaving scattered holes.
    let full = try IOASIDStore(path: freshPath("store-full"), options: o)
    let fullSet = try full.createSet(token: "vm:full", quota: capacity - 2)
    let fillSeconds = try time {
        var done = 0
        while done < usable - 1 {
            let batch = min(50_000, usable - 1 - done)
            try full.write { tx in for _ in 0..<batch { _ = try tx.allocate(in: fullSet) } }
            done += batch
        }
    }
    var rng = SystemRandomNumberGenerator()
    var holes = Set<UInt32>()
    while holes.count < usable / 100 { holes.insert(UInt32.random(in: 2...capacity - 2, using: &rng)) }
    try full.write { tx in for id in holes { try tx.free(IOASID(id), in: fullSet) } }
    print(String(format: "  (filled %d IDs in %.1f s; freed %d scattered IDs → 99%% full)", usable - 1, fillSeconds, holes.count))

    let (empty, emptySet) = try openStore(freshPath("store-empty"), capacity: capacity)

    // (a) What a caller sees: one durable allocation per call, p50/p99 latency.
    // Samples alternate between the two stores so that disk noise hits both alike.
    let n = options.quick ? 300 : 1000
    _ = try interleavedLatencies((empty, emptySet), (full, fullSet), 50)
    let (emptyLatency, fullLatency) = try interleavedLatencies((empty, emptySet), (full, fullSet), n)
    func pct(_ xs: [Double], _ p: Double) -> Double { xs[min(xs.count - 1, Int(Double(xs.count) * p))] }
    let micro: (Double) -> String = { String(format: "%.0f µs", $0 * 1e6) }
    record("durable allocate p50 latency: empty / 99% full", store: pct(emptyLatency, 0.5), raw: pct(fullLatency, 0.5), floor: 0.5, format: micro)
    record("durable allocate p99 latency: empty / 99% full", store: pct(emptyLatency, 0.99), raw: pct(fullLatency, 0.99), floor: 0.5, format: micro)

    // (b) 1,000 allocations in one commit. At 99% fill each takes a scattered hole, so
    // each dirties its own B-tree leaf; raw LMDB shows the same effect for scattered
    // puts into 1M keys against appended puts, measured alongside.
    let perRound = 1000
    func round(_ store: IOASIDStore, _ set: SetID) throws -> Double {
        var taken: [IOASID] = []
        taken.reserveCapacity(perRound)
        let seconds = try time {
            try store.write { tx in for _ in 0..<perRound { taken.append(try tx.allocate(in: set)) } }
        }
        try store.write { tx in for id in taken { try tx.free(id, in: set) } }
        return Double(perRound) / seconds
    }
    let (rawEnv, rawDB) = try openRaw(freshPath("raw-fill"))
    var nextRaw = UInt32(1)
    while nextRaw < capacity - 1 {
        try rawEnv.write { txn in
            for _ in 0..<50_000 where nextRaw < capacity - 1 {
                if nextRaw % 100 != 0 { _ = try txn.put(rawValue, forKey: key(nextRaw), in: rawDB) }
                nextRaw += 1
            }
        }
    }
    var rawHole: UInt32 = 0
    func rawRound(scattered: Bool) throws -> Double {
        var keys: [[UInt8]] = []
        for i in 0..<perRound {
            if scattered {
                // Ascending holes, as lowest-free allocation takes them.
                rawHole = (rawHole + 100) % (capacity - 200)
                keys.append(key(rawHole + 100))
            } else {
                keys.append(key(capacity + UInt32(i) + nextRaw))
            }
        }
        if !scattered { nextRaw += UInt32(perRound) }
        let seconds = try time { try rawEnv.write { txn in for k in keys { _ = try txn.put(rawValue, forKey: k, in: rawDB) } } }
        try rawEnv.write { txn in for k in keys { _ = try txn.delete(k, in: rawDB) } }
        return Double(perRound) / seconds
    }
    var fullRates: [Double] = [], emptyRates: [Double] = [], rawScattered: [Double] = [], rawAppended: [Double] = []
    _ = try round(empty, emptySet)
    _ = try round(full, fullSet)
    for _ in 0..<rounds {
        emptyRates.append(try round(empty, emptySet))
        fullRates.append(try round(full, fullSet))
        rawAppended.append(try rawRound(scattered: false))
        rawScattered.append(try rawRound(scattered: true))
    }
    record("1,000 allocations/commit: 99% full / empty", store: median(fullRates), raw: median(emptyRates), floor: nil)
    record("  raw LMDB, 1,000 puts/commit: scattered / appended", store: median(rawScattered), raw: median(rawAppended), floor: nil)
}

// MARK: 5. Outbox: allocation with a subscriber, and draining with acknowledgements

if shouldRun("outbox") {
    // Blocks of 50 commits alternate between raw LMDB, a store with no subscriber
    // and a store with one, so that drift in flush latency falls on all three alike.
    let blocks = options.quick ? 10 : 40
    let (outboxEnv, outboxDB) = try openRaw(freshPath("raw-outbox"))
    let (plain, plainSet) = try openStore(freshPath("store-nosub"))
    let (watched, watchedSet) = try openStore(freshPath("store-sub"))
    try watched.subscribe("iommu")
    var blockRaw = 0.0, noneSeconds = 0.0, oneSeconds = 0.0
    var rawKey: UInt32 = 1
    for _ in 0..<blocks {
        blockRaw += try rawSingleCommits(outboxEnv, outboxDB, 50, from: &rawKey)
        noneSeconds += try time { for _ in 0..<50 { _ = try plain.allocate(in: plainSet) } }
        oneSeconds += try time { for _ in 0..<50 { _ = try watched.allocate(in: watchedSet) } }
    }
    let commits = Double(blocks * 50)
    record("durable allocate with 1 subscriber / with none", store: commits / oneSeconds, raw: commits / noneSeconds, floor: 1 / 1.2)
    record("durable allocate with 1 subscriber / raw put", store: commits / oneSeconds, raw: commits / blockRaw, floor: nil)

    // Drain: read a batch of pending events and acknowledge it (one durable commit per batch).
    let events = options.quick ? 50_000 : 200_000
    let batch = 1000
    let (store, set) = try openStore(freshPath("store-drain"))
    try store.subscribe("agent")
    var made = 0
    while made < events {
        try store.write { tx in for _ in 0..<min(10_000, events - made) { _ = try tx.allocate(in: set) } }
        made += 10_000
    }
    let drainSeconds = try time {
        while true {
            let pending = try store.pendingEvents(for: "agent", limit: batch)
            guard let last = pending.last else { break }
            try store.acknowledge("agent", through: last.sequence)
        }
    }
    let outboxLeft = try store.rawDump()["events"]?.count ?? -1
    // Raw: read 1,000 records with a cursor and delete them in one commit, the same number of times.
    let (env, db) = try openRaw(freshPath("raw-drain"))
    var next: UInt32 = 1
    while next <= UInt32(events) {
        try env.write { txn in for _ in 0..<10_000 { _ = try txn.put(rawValue, forKey: key(next), in: db); next += 1 } }
    }
    let rawSeconds = try time {
        var from: UInt32 = 1
        while from <= UInt32(events) {
            let keys: [[UInt8]] = try env.read { txn in
                try txn.withCursor(on: db) { cursor in
                    var keys: [[UInt8]] = []
                    try cursor.forEach(from: key(from)) { entry in
                        keys.append(entry.keyBytes())
                        return keys.count < batch
                    }
                    return keys
                }
            }
            try env.write { txn in for k in keys { _ = try txn.delete(k, in: db) } }
            from += UInt32(batch)
        }
    }
    record("drain+ack events, \(batch)/batch (outbox left: \(outboxLeft))", store: Double(events) / drainSeconds, raw: Double(events) / rawSeconds, floor: nil)
    let drainRate = Double(events) / drainSeconds
    rows.append(Row(name: "  (floor: ≥ 100,000 events/s)", store: rate(drainRate), raw: "", ratio: nil, floor: "≥ 100k/s", verdict: drainRate >= 100_000 ? "meets" : "BELOW"))
}

// MARK: 6. Export and import of a 1,000,000-ID set

if shouldRun("migration") {
    let count = options.quick ? 200_000 : 1_000_000
    var o = IOASIDStore.Options()
    o.capacity = 1 << 21
    o.systemQuota = 1
    let source = try IOASIDStore(path: freshPath("store-export"), options: o)
    let set = try source.createSet(token: "vm:big", quota: UInt32(count))
    var made = 0
    while made < count {
        let batch = min(100_000, count - made)
        try source.write { tx in
            for i in made..<made + batch { _ = try tx.allocate(in: set, data: [0xab, 0xcd], guest: UInt32(i)) }
        }
        made += batch
    }
    let file = freshPath("export") + ".jsonl"
    _ = FileManager.default.createFile(atPath: file, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
    let exportSeconds = try time {
        _ = try source.exportSet(set, to: { try handle.write(contentsOf: $0) })
        try handle.synchronize()
    }
    try handle.close()
    let destination = try IOASIDStore(path: freshPath("store-import"), options: o)
    var result: ImportResult?
    let importSeconds = try time { result = try destination.importSet(from: file) }
    guard result?.imported == count else { fatalError("import lost IDs") }

    // Raw LMDB: the same number of records, batched put in one commit, then a cursor scan.
    let (env, db) = try openRaw(freshPath("raw-migration"))
    let value = [UInt8](repeating: 0xab, count: 14)
    let rawPutSeconds = try time {
        try env.write { txn in for i in 1...UInt32(count) { _ = try txn.put(value, forKey: key(i), in: db) } }
    }
    var scanned = 0
    let rawScanSeconds = try time {
        try env.read { txn in
            try txn.withCursor(on: db) { cursor in
                try cursor.forEach { entry in
                    scanned += entry.valueCount > 0 ? 1 : 0
                    return true
                }
            }
        }
    }
    let seconds: (Double) -> String = { String(format: "%.2f s", $0) }
    record("export \(count) IDs: store / raw cursor scan (time)", store: rawScanSeconds, raw: exportSeconds, floor: nil, format: seconds)
    record("import \(count) IDs: store / raw batched put (time)", store: rawPutSeconds, raw: importSeconds, floor: nil, format: seconds)
    rows.append(Row(name: "  (floor: export within 10 s)", store: seconds(exportSeconds), raw: "", ratio: nil, floor: "≤ 10 s", verdict: exportSeconds <= 10 ? "meets" : "BELOW"))
    rows.append(Row(name: "  (floor: import within 10 s)", store: seconds(importSeconds), raw: "", ratio: nil, floor: "≤ 10 s", verdict: importSeconds <= 10 ? "meets" : "BELOW"))
}

// MARK: 7. Group commit: durable allocate+free with concurrent callers

var concurrency: [(callers: Int, rate: Double)] = []
var flushLimit = 0.0
if shouldRun("concurrent") {
    let seconds = options.quick ? 1.0 : 3.0
    // The flush-rate limit: raw single-put durable commits, one after another.
    let (env, db) = try openRaw(freshPath("raw-flush"))
    var puts = 0
    let rawSeconds = try time {
        let deadline = Date().addingTimeInterval(seconds / 2)
        while Date() < deadline {
            try env.write { txn in _ = try txn.put(rawValue, forKey: key(UInt32(puts + 1)), in: db) }
            puts += 1
        }
    }
    flushLimit = Double(puts) / rawSeconds
    for callers in [1, 4, 16, 64] {
        let (store, set) = try openStore(freshPath("store-concurrent-\(callers)"))
        let started = ContinuousClock.now
        let deadline = Date().addingTimeInterval(seconds)
        let operations = try await hammer(store, set, callers: callers, until: deadline)
        let elapsed = ContinuousClock.now - started
        let rate = Double(operations) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        concurrency.append((callers, rate))
        record("durable allocate+free, \(callers) concurrent callers", store: rate, raw: flushLimit, floor: nil)
    }
    if let single = concurrency.first?.rate, let many = concurrency.last?.rate {
        rows.append(Row(name: "  (floor: 64 callers ≥ 10× 1 caller)", store: String(format: "%.1f×", many / single), raw: "", ratio: nil,
                        floor: "≥ 10×", verdict: many >= 10 * single ? "meets" : "BELOW"))
    }
}

/// `callers` tasks allocating and freeing through the group-commit writer until `deadline`; returns the operations done.
func hammer(_ store: IOASIDStore, _ set: SetID, callers: Int, until deadline: Date) async throws -> Int {
    try await withThrowingTaskGroup(of: Int.self) { group in
        for _ in 0..<callers {
            group.addTask {
                var done = 0
                while Date() < deadline {
                    let id = try await store.allocate(in: set)
                    try await store.free(id, in: set)
                    done += 2
                }
                return done
            }
        }
        return try await group.reduce(0, +)
    }
}

// MARK: 8. Lookups: find, findSet, guest → host

if shouldRun("lookup") {
    let populated = 100_000
    let lookups = options.quick ? 200_000 : 1_000_000
    let (env, db) = try openRaw(freshPath("raw-lookup"))
    try env.write { txn in for i in 1...UInt32(populated) { _ = try txn.put(rawValue, forKey: key(i), in: db) } }
    let (store, set) = try openStore(freshPath("store-lookup"))
    try store.write { tx in for i in 0..<UInt32(populated) { _ = try tx.allocate(in: set, guest: i + 1) } }
    var rng = SystemRandomNumberGenerator()
    let order = (0..<lookups).map { _ in UInt32.random(in: 1...UInt32(populated), using: &rng) }
    var raw: [Double] = [], find: [Double] = [], findSet: [Double] = [], guest: [Double] = []
    for _ in 0..<rounds {
        raw.append(Double(lookups) / (try time {
            try env.read { txn in for id in order { _ = try txn.withValue(forKey: key(id), in: db) { $0.remaining } } }
        }))
        find.append(Double(lookups) / (try time { try store.read { tx in for id in order { _ = try tx.find(IOASID(id), in: set) } } }))
        findSet.append(Double(lookups) / (try time { try store.read { tx in for id in order { _ = try tx.findSet(IOASID(id)) } } }))
        guest.append(Double(lookups) / (try time { try store.read { tx in for g in order { _ = try tx.hostID(forGuest: g, in: set) } } }))
    }
    record("find(id, in:) vs raw mdb_get", store: median(find), raw: median(raw), floor: 0.5)
    record("findSet(id) vs raw mdb_get", store: median(findSet), raw: median(raw), floor: nil)
    record("hostID(forGuest:in:) vs raw mdb_get", store: median(guest), raw: median(raw), floor: nil)
}

// MARK: 9. Latency at fill levels, open time, free-set of 100,000

if shouldRun("scale") {
    let capacity: UInt32 = 1 << 20
    var o = IOASIDStore.Options()
    o.capacity = capacity
    o.systemQuota = 1
    let n = options.quick ? 300 : 1000
    /// p50 and p99 of one durable allocation, sampled alternately in two stores (disk noise hits both alike).
    func latencies(_ a: (IOASIDStore, SetID), _ b: (IOASIDStore, SetID)) throws -> ((Double, Double), (Double, Double)) {
        let (first, second) = try interleavedLatencies(a, b, n)
        return ((first[n / 2], first[min(n - 1, n * 99 / 100)]), (second[n / 2], second[min(n - 1, n * 99 / 100)]))
    }
    let micro: (Double) -> String = { String(format: "%.0f µs", $0 * 1e6) }
    let (empty, emptySet) = try openStore(freshPath("store-latency-empty"), capacity: capacity)
    let path = freshPath("store-latency-full")
    var full: IOASIDStore? = try IOASIDStore(path: path, options: o)
    let fullSet = try full!.createSet(token: "vm:full", quota: capacity - 2)
    var done = 0
    while done < Int(capacity) - 2 {
        let batch = min(100_000, Int(capacity) - 2 - done)
        try full!.write { tx in for _ in 0..<batch { _ = try tx.allocate(in: fullSet) } }
        done += batch
    }
    var report: VerificationReport?
    let verifySeconds = try time { report = try full!.verify() }
    guard report?.isClean == true else { fatalError("the full store does not verify") }
    rows.append(Row(name: "verify a store of \(report!.idsChecked) IDs", store: String(format: "%.2f s", verifySeconds), raw: "",
                    ratio: nil, floor: "< 2 s", verdict: verifySeconds < 2 ? "meets" : "BELOW"))
    print(String(format: "  verify of %d IDs: %.2f s", report!.idsChecked, verifySeconds))
    var freed = Set<UInt32>()
    var rng = SystemRandomNumberGenerator()
    var levels: [(String, Double, Double)] = []
    var zero = (0.0, 0.0)
    for (label, fraction) in [("99.9%", 0.001), ("99%", 0.01), ("50%", 0.5)] {
        let target = Int(Double(capacity) * fraction)
        var batch: [UInt32] = []
        while freed.count < target {
            let id = UInt32.random(in: 1...capacity - 2, using: &rng)
            if freed.insert(id).inserted { batch.append(id) }
        }
        try full!.write { tx in for id in batch { try tx.free(IOASID(id), in: fullSet) } }
        let ((p50, p99), emptyFigures) = try latencies((full!, fullSet), (empty, emptySet))
        if label == "99.9%" { zero = emptyFigures }
        levels.append((label, p50, p99))
    }
    record("durable allocate p50 latency: 0% / 99.9% fill", store: zero.0, raw: levels[0].1, floor: nil, format: micro)
    record("durable allocate p99 latency: 0% / 99.9% fill", store: zero.1, raw: levels[0].2, floor: 0.5, format: micro)
    for (label, p50, p99) in levels.dropFirst() {
        record("durable allocate p50 / p99 latency at \(label) fill", store: p50, raw: p99, floor: nil, format: micro)
    }
    rows.append(Row(name: "  latency at 0% fill: p50 / p99", store: micro(zero.0), raw: micro(zero.1), ratio: nil, floor: "", verdict: ""))

    // Open time of a store holding 2^20 IDs (half of them now: 50% fill) — reopen from scratch each time.
    let held = try full!.status().allocated
    full = nil
    var opens: [Double] = []
    for _ in 0..<(options.quick ? 5 : 20) {
        var reopened: IOASIDStore?
        opens.append(try time { reopened = try IOASIDStore(path: path, options: o) })
        _ = try reopened!.status().capacity
        reopened = nil
    }
    let openMedian = median(opens)
    rows.append(Row(name: "open a store of capacity 2^20 holding \(held) IDs (median)", store: String(format: "%.2f ms", openMedian * 1000),
                    raw: "", ratio: nil, floor: "< 50 ms", verdict: openMedian < 0.05 ? "meets" : "BELOW"))
    print(String(format: "  open: %.2f ms median", openMedian * 1000))

    // Free-set of a 100,000-ID set in a store that also holds 500,000 other IDs.
    var big = o
    big.capacity = 1 << 21
    let store = try IOASIDStore(path: freshPath("store-freeset"), options: big)
    let other = try store.createSet(token: "vm:other", quota: 500_000)
    let victim = try store.createSet(token: "vm:victim", quota: 100_000)
    try store.write { tx in for _ in 0..<500_000 { _ = try tx.allocate(in: other) } }
    try store.write { tx in for _ in 0..<100_000 { _ = try tx.allocate(in: victim) } }
    let (renv, rdb) = try openRaw(freshPath("raw-freeset"))
    try renv.write { txn in for i in 1...UInt32(100_000) { _ = try txn.put(rawValue, forKey: key(i), in: rdb) } }
    let rawDelete = try time { try renv.write { txn in for i in 1...UInt32(100_000) { _ = try txn.delete(key(i), in: rdb) } } }
    let freeSetSeconds = try time { _ = try store.freeSet(victim, destroy: true) }
    let seconds: (Double) -> String = { String(format: "%.3f s", $0) }
    record("free-set of 100,000 IDs / raw delete of 100,000 keys (time)", store: rawDelete, raw: freeSetSeconds, floor: nil, format: seconds)
    rows.append(Row(name: "  (floor: free-set of 100,000 IDs under 1 s)", store: seconds(freeSetSeconds), raw: "", ratio: nil,
                    floor: "< 1 s", verdict: freeSetSeconds < 1 ? "meets" : "BELOW"))
}

// MARK: Plot

if !concurrency.isEmpty {
    // Throughput against concurrent callers (log scale), raw LMDB's single-commit flush rate as the limit line.
    let width = 640.0, height = 400.0, left = 70.0, bottom = 50.0, top = 30.0, right = 20.0
    let maxRate = max(concurrency.map(\.rate).max() ?? 1, flushLimit) * 1.15
    func x(_ callers: Int) -> Double { left + (log2(Double(callers)) / 6) * (width - left - right) }
    func y(_ rate: Double) -> Double { height - bottom - rate / maxRate * (height - bottom - top) }
    var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    svg += "<text x=\"\(width / 2)\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">Durable allocate+free throughput with group commit</text>\n"
    svg += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\" stroke=\"black\"/>\n"
    svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"black\"/>\n"
    for tick in 0...4 {
        let rate = maxRate * Double(tick) / 4
        svg += "<text x=\"\(left - 6)\" y=\"\(y(rate) + 4)\" text-anchor=\"end\">\(rate >= 1000 ? String(format: "%.0fk", rate / 1000) : String(format: "%.0f", rate))</text>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(y(rate))\" x2=\"\(width - right)\" y2=\"\(y(rate))\" stroke=\"#ddd\"/>\n"
    }
    for callers in [1, 2, 4, 8, 16, 32, 64] {
        svg += "<text x=\"\(x(callers))\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(callers)</text>\n"
    }
    svg += "<text x=\"\(width / 2)\" y=\"\(height - 10)\" text-anchor=\"middle\">concurrent callers</text>\n"
    svg += "<text x=\"16\" y=\"\(height / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(height / 2))\">operations per second</text>\n"
    svg += "<line x1=\"\(left)\" y1=\"\(y(flushLimit))\" x2=\"\(width - right)\" y2=\"\(y(flushLimit))\" stroke=\"#c0392b\" stroke-dasharray=\"6 4\"/>\n"
    svg += "<text x=\"\(width - right - 4)\" y=\"\(y(flushLimit) - 6)\" text-anchor=\"end\" fill=\"#c0392b\">raw LMDB, one put per durable commit: \(rate(flushLimit))</text>\n"
    let points = concurrency.map { "\(x($0.callers)),\(y($0.rate))" }.joined(separator: " ")
    svg += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"#2c7be5\" stroke-width=\"2.5\"/>\n"
    for point in concurrency {
        svg += "<circle cx=\"\(x(point.callers))\" cy=\"\(y(point.rate))\" r=\"4\" fill=\"#2c7be5\"/>\n"
        svg += "<text x=\"\(x(point.callers))\" y=\"\(y(point.rate) - 9)\" text-anchor=\"middle\" fill=\"#2c7be5\">\(rate(point.rate))</text>\n"
    }
    svg += "</svg>\n"
    try? FileManager.default.createDirectory(atPath: "bench-results", withIntermediateDirectories: true)
    try svg.write(toFile: "bench-results/throughput.svg", atomically: true, encoding: .utf8)
    print("  wrote bench-results/throughput.svg")
}

// MARK: Report

var table = "| benchmark | store | baseline | ratio | floor | |\n|---|---:|---:|---:|---|---|\n"
for r in rows {
    table += "| \(r.name) | \(r.store) | \(r.raw) | \(r.ratio.map { String(format: "%.2f×", $0) } ?? "") | \(r.floor) | \(r.verdict) |\n"
}
print("\n" + table)

