// ioasid-worker: a workload process for multi-process and crash tests.
//
//   ioasid-worker alloc STORE SET COUNT
//       Allocates COUNT IDs in SET, one durable commit each, printing each ID
//       on its own line (flushed) right after its commit returns.
//   ioasid-worker churn STORE SET SECONDS
//       Allocates and frees in SET for SECONDS, printing every ID it was handed.
//
// Exit status: 0 done, 1 an operation failed (message on stderr), 64 usage.

import Foundation
import IOASIDStore

func fail(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(code)
}

let args = CommandLine.arguments
guard args.count == 5, let set = UInt32(args[3]) else {
    fail("usage: ioasid-worker alloc|churn STORE SET COUNT|SECONDS", code: 64)
}
/// Writes one line straight to standard output (no buffering: a killed worker loses nothing it printed).
func emit(_ value: some CustomStringConvertible) {
    FileHandle.standardOutput.write(Data((value.description + "\n").utf8))
}

do {
    let store = try IOASIDStore(path: args[2], options: {
        var o = IOASIDStore.Options()
        o.creation = .openExisting
        return o
    }())
    switch args[1] {
    case "alloc":
        guard let count = Int(args[4]) else { fail("COUNT must be a number", code: 64) }
        for _ in 0..<count {
            let id = try store.allocate(in: SetID(set))
            emit(id)
        }
    case "churn":
        guard let seconds = Double(args[4]) else { fail("SECONDS must be a number", code: 64) }
        let deadline = Date().addingTimeInterval(seconds)
        var mine: [IOASID] = []
        while Date() < deadline {
            if mine.count < 20 && (mine.isEmpty || Bool.random()) {
                let id = try store.allocate(in: SetID(set))
                emit(id)
                mine.append(id)
            } else {
                let index = Int.random(in: 0..<mine.count)
                try store.free(mine.remove(at: index), in: SetID(set))
            }
        }
    default:
        fail("unknown workload \(args[1])", code: 64)
    }
} catch {
    fail("\(error)", code: 1)
}
