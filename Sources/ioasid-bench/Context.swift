// Options, scratch directories and store set-up shared by the benchmarks.

import Foundation
import IOASIDStore

/// The command line: `ioasid-bench [--quick] [--dir DIR] [--only NAME[,NAME…]] [--keep] [--svg FILE]`.
struct BenchOptions {
    var quick = false
    var dir = NSTemporaryDirectory()
    var only: [String]?
    var keep = false
    /// Where to draw the group-commit plot (`--svg`); none when not given.
    var svg: String?

    static let usage = """
        usage: ioasid-bench [--quick] [--dir DIR] [--only NAME[,NAME…]] [--keep] [--svg FILE]
          NAME (substring match): single, batch, group, find, latency, migration, freeset, process, outbox, drain
        """

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        while let arg = rest.popFirst() {
            switch arg {
            case "--quick": quick = true
            case "--keep": keep = true
            case "--dir":
                guard let v = rest.popFirst() else { throw UsageError() }
                dir = v
            case "--only":
                guard let v = rest.popFirst() else { throw UsageError() }
                only = v.split(separator: ",").map(String.init)
            case "--svg":
                guard let v = rest.popFirst() else { throw UsageError() }
                svg = v
            default: throw UsageError()
            }
        }
    }
}

struct UsageError: Error {}

/// Where the benchmarks keep their stores, and what they share.
@MainActor final class Bench {
    let options: BenchOptions
    let scratch: String
    let report = Report()
    private var counter = 0

    /// Rounds per median.
    var rounds: Int { options.quick ? 3 : 5 }

    init(options: BenchOptions) throws {
        self.options = options
        scratch = (options.dir as NSString).appendingPathComponent("ioasid-bench-\(getpid())")
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    func cleanUp() {
        if !options.keep { try? FileManager.default.removeItem(atPath: scratch) }
    }

    /// A new path under the scratch directory.
    func fresh(_ name: String) -> String {
        counter += 1
        return (scratch as NSString).appendingPathComponent("\(name)-\(counter)")
    }

    func shouldRun(_ name: String) -> Bool {
        guard let only = options.only else { return true }
        return only.contains { name.contains($0) }
    }

    /// Runs one named benchmark, printing its heading and duration.
    func run(_ name: String, _ body: () async throws -> Void) async throws {
        guard shouldRun(name) else { return }
        say("[\(name)]")
        let start = ContinuousClock.now
        try await body()
        say(String(format: "  (%@ took %.1f s)", name as NSString, seconds(ContinuousClock.now - start)))
    }
}

/// Opens a new durable store with one bench set that may use the whole capacity.
/// The token of the bench's set (its ALLOC events carry it).
let benchToken = "vm:bench"

func openStore(_ path: String, capacity: UInt32 = 1 << 21) throws -> (IOASIDStore, SetID) {
    let store = try IOASIDStore(path: path, options: storeOptions(capacity: capacity))
    let set = try store.createSet(token: benchToken, quota: capacity - 2)
    return (store, set)
}

/// Durable (the default), system quota 1 so a bench set can take almost the whole capacity.
func storeOptions(capacity: UInt32) -> IOASIDStore.Options {
    var o = IOASIDStore.Options()
    o.capacity = capacity
    o.systemQuota = 1
    return o
}

/// A time limit for a loop of blocks: at least `minimum` blocks, then more only while
/// `seconds` have not passed, so that a slow disk cannot stretch a full run without bound.
struct Budget {
    let minimum: Int
    let seconds: Double
    let start = ContinuousClock.now

    func allows(_ done: Int) -> Bool {
        done < minimum || ioasid_bench.seconds(ContinuousClock.now - start) < seconds
    }
}

/// Alternates the order of two blocks from one block to the next, so neither always runs first.
func alternate(_ index: Int, _ first: () throws -> Void, _ second: () throws -> Void) rethrows {
    if index % 2 == 0 {
        try first()
        try second()
    } else {
        try second()
        try first()
    }
}
