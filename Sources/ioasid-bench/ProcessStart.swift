// One `ioasid find-set ID` process from spawn to exit, beside `/bin/true`.

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
        var cliTimes: [Double] = [], trueTimes: [Double] = []
        _ = try runTimed([cli, "find-set", "--store", path, "\(id)"], errorFile: errors)
        _ = try runTimed(["/bin/true"], errorFile: errors)
        for i in 0..<runs {
            try alternate(i) {
                cliTimes.append(try runTimed([cli, "find-set", "--store", path, "\(id)"], errorFile: errors))
            } _: {
                trueTimes.append(try runTimed(["/bin/true"], errorFile: errors))
            }
        }
        report.times("`ioasid find-set ID` process, spawn to exit (median of \(runs))", store: median(cliTimes), raw: median(trueTimes),
                     rawWhat: "`/bin/true` process, spawn to exit (median of \(runs); not LMDB)",
                     floor: Floor(text: "store ≤ 5 ms median", storeFigure: median(cliTimes)) { $0 <= 0.005 }, format: millis)
    }
}
