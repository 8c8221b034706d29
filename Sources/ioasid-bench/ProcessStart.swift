// One `ioasid find-set ID` process from spawn to exit, beside `/bin/true`; and the
// same lookup written `find-set -- ID`, which the quick lookup leaves to
// argument-parser, beside it (the store against itself).

import Foundation
import IOASIDStore

extension Bench {
    func process() throws {
        let runs = options.quick ? 30 : 100
        let cli = try cliBinary()
        let errors = fresh("stderr") + ".txt"
        let path = fresh("store-process")
        let id: IOASID
        do {
            let (store, set) = try openStore(path, capacity: 1 << 20)
            let ids = try store.write { tx in try (0..<10_000).map { _ in try tx.allocate(in: set) } }
            id = ids[ids.count / 2]
        }
        let plain = [cli, "find-set", "--store", path, "\(id)"]
        let parsed = [cli, "find-set", "--store", path, "--", "\(id)"]
        var cliTimes: [Double] = [], parsedTimes: [Double] = [], trueTimes: [Double] = []
        let steps: [() throws -> Void] = [
            { cliTimes.append(try runTimed(plain, errorFile: errors)) },
            { parsedTimes.append(try runTimed(parsed, errorFile: errors)) },
            { trueTimes.append(try runTimed(["/bin/true"], errorFile: errors)) },
        ]
        for step in steps { try step() }
        cliTimes = []; parsedTimes = []; trueTimes = []
        // Rotated, so that no series always runs first.
        for i in 0..<runs { for j in 0..<steps.count { try steps[(i + j) % steps.count]() } }
        report.times("`ioasid find-set ID` process, spawn to exit (median of \(runs))", store: median(cliTimes), raw: median(trueTimes),
                     rawWhat: "`/bin/true` process, spawn to exit (median of \(runs); not LMDB)",
                     floor: Floor(text: "store ≤ 5 ms median", storeFigure: median(cliTimes)) { $0 <= 0.005 }, format: millis)
        report.compare("`ioasid find-set` process: `find-set ID` (quick lookup) vs `find-set -- ID` (argument-parser) (median of \(runs))",
                       a: millis(median(cliTimes)), b: millis(median(parsedTimes)), quotient: median(cliTimes) / median(parsedTimes))
    }
}
