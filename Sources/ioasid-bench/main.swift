// ioasid-bench: store operations beside LMDB's C API called directly, in the same run.
//
//   ioasid-bench [--quick] [--dir DIR] [--only NAME[,NAME…]] [--keep] [--svg FILE]
//
// Every raw baseline calls liblmdb directly (`import CLMDB`): a durable environment
// (no MDB_NOSYNC, MDB_NOTLS), records the size the store keeps (its seal included), and the same number
// of records per durable commit as the store operation it stands beside. Store and raw
// work alternate in blocks within one run, so drift in the machine falls on both alike.
//
// Table 1 compares the store with raw C LMDB (ratios > 1 favour the store: store/raw
// for rates, raw time/store time for times); table 2 compares the store with itself;
// table 3 lists store figures that have no baseline. The export/import and find-set
// rows run the `ioasid` binary found next to this one (build both with the same -c).

import CLMDB
import Foundation

let started = ContinuousClock.now
let options: BenchOptions
do {
    options = try BenchOptions(Array(CommandLine.arguments.dropFirst()))
} catch {
    try? FileHandle.standardError.write(contentsOf: Data((BenchOptions.usage + "\n").utf8))
    exit(64)
}

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

let bench: Bench
do {
    try checkRawRecordSizes()
    bench = try Bench(options: options)
} catch {
    try? FileHandle.standardError.write(contentsOf: Data("ioasid-bench: \(error)\n".utf8))
    exit(1)
}
let lmdbVersion = String(cString: mdb_version(nil, nil, nil))
let loadBefore = loadAverage()
say("ioasid-bench\(options.quick ? " --quick" : ""): \(lmdbVersion); \(ProcessInfo.processInfo.activeProcessorCount) cores; load average \(loadBefore); scratch \(bench.scratch)")

var groupPoints: [GroupPoint] = []
do {
    try await bench.run("single") { try bench.single() }
    try await bench.run("batch") { try bench.batch() }
    try await bench.run("group") { groupPoints = try await bench.group() }
    try await bench.run("find") { try bench.find() }
    try await bench.run("checksums") { try bench.checksums() }
    try await bench.run("latency") { try bench.latency() }
    try await bench.run("migration") { try bench.migration() }
    try await bench.run("freeset") { try bench.freeSet() }
    try await bench.run("process") { try bench.process() }
    try await bench.run("outbox") { try bench.outbox() }
    try await bench.run("drain") { try bench.drain() }
} catch {
    try? FileHandle.standardError.write(contentsOf: Data("ioasid-bench: \(error)\n".utf8))
    bench.cleanUp()
    exit(1)
}
bench.cleanUp()

if !groupPoints.isEmpty, let svg = options.svg {
    let directory = (svg as NSString).deletingLastPathComponent
    if !directory.isEmpty { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
    do {
        try throughputSVG(groupPoints).write(toFile: svg, atomically: true, encoding: .utf8)
        say("  wrote \(svg)")
    } catch {
        try? FileHandle.standardError.write(contentsOf: Data("ioasid-bench: cannot write \(svg): \(error)\n".utf8))
    }
}

let total = seconds(ContinuousClock.now - started)
bench.report.note(String(format: "Run took %.0f s (%@); load average before %@, after %@ on %d cores.", total,
                         options.quick ? "--quick" : "full", loadBefore, loadAverage(), ProcessInfo.processInfo.activeProcessorCount))
say("\n" + bench.report.markdown)
