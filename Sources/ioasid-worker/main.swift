// ioasid-worker: workload processes for multi-process, crash and soak tests.
//
//   ioasid-worker alloc STORE SET COUNT
//       Allocates COUNT IDs in SET, one durable commit each, printing each ID
//       on its own line right after its commit returns.
//   ioasid-worker churn STORE SET SECONDS
//       Allocates and frees in SET for SECONDS, printing every ID it was handed;
//       stamps each ID with its pid and checks the stamp before freeing it, so an
//       ID handed to two processes at once is caught (exit 2).
//   ioasid-worker hold-reader STORE
//       Opens a read transaction and sleeps in it (to be killed: a stale reader).
//   ioasid-worker group-commit STORE CALLERS SECONDS
//       CALLERS async tasks allocate and free in one set for SECONDS; prints
//       operations per second and operations per durable commit.
//   ioasid-worker hold-writer STORE SECONDS
//       Begins a write transaction, prints "writing", and holds LMDB's writer
//       lock for SECONDS before committing nothing.
//   ioasid-worker fork STORE reuse|reopen
//       Opens STORE, reads it, then fork()s. The child either uses the parent's
//       store (which must trap: "reuse") or opens the path again (which must give
//       it an environment of its own: "reopen") and reads. The parent waits,
//       reads again, and prints "child exit N" or "child signal N".
//   ioasid-worker torture STORE JOURNAL SEED [FAILPOINT:N]
//       The crash-torture child: a random workload of every operation, journaling
//       each operation it has seen succeed (fsynced after the reply).
//   ioasid-worker torture-parent [--kills N] [--dir DIR] [--seed S]
//       Runs the child N times, killing it with SIGKILL at random moments and at
//       named failpoints, and checks the store and the journal after every kill.
//   ioasid-worker corrupt-fuzz [--ioasid BIN] [--trials N] [--seed S] [--trial K]
//       [--dir DIR] [--keep-failures DIR] [--template STORE] [--timeout SECONDS] [--verbose]
//       Damages copies of a store's data.mdb (bit flips, zeroed or random runs,
//       truncation, swapped pages) and checks that the `ioasid` binary never
//       crashes, hangs, writes on a read or answers wrongly while verify is clean.
//   ioasid-worker measure RESULT PROGRAM ARGS…
//       Runs PROGRAM (absolute path) with this process's standard streams and
//       writes "maxrss_kb elapsed_ms exit_status signal" to the file RESULT.
//   ioasid-worker with-sigpipe default|ignore PROGRAM ARGS…
//       Executes PROGRAM with SIGPIPE at its default action or ignored.
//   ioasid-worker snoop DIR
//       Run as another user: tries to open everything under DIR (and the open
//       files of ioasid processes) until standard input closes; prints what it opened.
//   ioasid-worker ordered-consumer STORE NAME LOG SEED [drain]
//       Consumes NAME's events in random batches, logging each sequence before
//       acknowledging it, and checks that every subscriber NAME runs after had
//       acknowledged each event it was handed (exit 2 otherwise). With drain,
//       exits once nothing is visible to NAME.
//   ioasid-worker churn-size STORE OPS none|lapsed|stuck
//       Allocates OPS IDs, then frees them (1,000 per commit) in a new store, with
//       no subscriber, a lapsing and a live one, or one stuck without a limit;
//       prints the store's size and outbox.
//   ioasid-worker atomic-write DEST full|no-dir-sync|no-file-sync
//       Writes DEST through a temporary file and a rename, optionally leaving
//       out the directory or file sync (controls for the power-loss model).
//
// Exit status: 0 done, 1 an operation failed (message on stderr), 2 a violation, 64 usage.

import Foundation
import IOASIDStore
import LMDB

func fail(_ message: String, code: Int32) -> Never {
    try? FileHandle.standardError.write(contentsOf: Data((message + "\n").utf8))
    exit(code)
}

/// Writes one line straight to standard output (no buffering: a killed worker loses nothing it printed).
func emit(_ value: some CustomStringConvertible) {
    try? FileHandle.standardOutput.write(contentsOf: Data((value.description + "\n").utf8))
}

func openExisting(_ path: String) throws -> IOASIDStore {
    var options = IOASIDStore.Options()
    options.creation = .openExisting
    return try IOASIDStore(path: path, options: options)
}

let args = Array(CommandLine.arguments.dropFirst())
do {
    switch args.first {
    case "alloc" where args.count == 4:
        guard let set = UInt32(args[2]), let count = Int(args[3]) else { fail("SET and COUNT must be numbers", code: 64) }
        let store = try openExisting(args[1])
        for _ in 0..<count { emit(try store.allocate(in: SetID(set))) }
    case "churn" where args.count == 4:
        guard let set = UInt32(args[2]), let seconds = Double(args[3]) else { fail("SET and SECONDS must be numbers", code: 64) }
        try churn(store: try openExisting(args[1]), set: SetID(set), seconds: seconds)
    case "hold-reader" where args.count == 2:
        let store = try openExisting(args[1])
        try store.read { _ in
            emit("reading")
            while true { sleep(60) }
        }
    case "group-commit" where args.count == 4:
        guard let callers = Int(args[2]), let seconds = Double(args[3]) else { fail("CALLERS and SECONDS must be numbers", code: 64) }
        let semaphore = DispatchSemaphore(value: 0)
        let path = args[1]
        Task.detached {  // not on the main actor, which the semaphore blocks
            do { try await groupCommitProbe(path: path, callers: callers, seconds: seconds) } catch { fail("\(error)", code: 1) }
            semaphore.signal()
        }
        semaphore.wait()
    case "find-loop" where args.count == 3:
        // Profiling aid: a store of 100,000 IDs, then COUNT lookups with their own read transactions.
        guard let count = Int(args[2]) else { fail("COUNT must be a number", code: 64) }
        let store = try IOASIDStore(path: args[1])
        let set = try store.createSet(token: "find-loop-\(getpid())", quota: 100_000)
        try store.write { tx in for _ in 0..<100_000 { _ = try tx.allocate(in: set) } }
        let started = Date()
        var hits = 0
        for i in 0..<count { hits += try store.find(IOASID(UInt32(1 + i % 100_000)), in: set).id.rawValue > 0 ? 1 : 0 }
        emit(String(format: "%d lookups in %.3f s: %.0f/s", hits, Date().timeIntervalSince(started), Double(count) / Date().timeIntervalSince(started)))
    case "hold-writer" where args.count == 3:
        guard let seconds = UInt32(args[2]) else { fail("SECONDS must be a number", code: 64) }
        let store = try openExisting(args[1])
        try store.write { _ in
            emit("writing")
            sleep(seconds)
        }
    case "fork" where args.count == 3 && ["reuse", "reopen"].contains(args[2]):
        try forkCheck(path: args[1], reopen: args[2] == "reopen")
    case "torture" where args.count == 4 || args.count == 5:
        guard let seed = UInt64(args[3]) else { fail("SEED must be a number", code: 64) }
        try TortureChild(store: args[1], journal: args[2], seed: seed, failpoint: args.count == 5 ? args[4] : nil).run()
    case "torture-parent":
        exit(try TortureParent(arguments: Array(args.dropFirst())).run())
    case "corrupt-fuzz":
        exit(try CorruptFuzz(arguments: Array(args.dropFirst())).run())
    case "measure" where args.count >= 3:
        measure(result: args[1], program: args[2], arguments: Array(args.dropFirst(3)))
    case "with-sigpipe" where args.count >= 3 && ["default", "ignore"].contains(args[1]):
        execWithSIGPIPE(ignored: args[1] == "ignore", program: args[2], arguments: Array(args.dropFirst(3)))
    case "snoop" where args.count == 2:
        snoop(directory: args[1])
    case "ordered-consumer" where args.count == 5 || (args.count == 6 && args[5] == "drain"):
        guard let seed = UInt64(args[4]) else { fail("SEED must be a number", code: 64) }
        try orderedConsumer(path: args[1], name: args[2], log: args[3], seed: seed, drain: args.count == 6)
    case "churn-size" where args.count == 4 && ["none", "lapsed", "stuck"].contains(args[3]):
        guard let operations = Int(args[2]) else { fail("OPS must be a number", code: 64) }
        try churnSize(path: args[1], operations: operations, mode: args[3])
    case "atomic-write" where args.count == 3 && ["full", "no-dir-sync", "no-file-sync"].contains(args[2]):
        try atomicWrite(destination: args[1], mode: args[2])
    default:
        fail("usage: ioasid-worker alloc|churn|hold-reader|hold-writer|fork|torture|torture-parent|corrupt-fuzz|measure|with-sigpipe|snoop|atomic-write|ordered-consumer|churn-size … (see the source header)", code: 64)
    }
} catch {
    fail("\(error)", code: 1)
}

/// Allocates and frees for `seconds`, stamping IDs with this pid and checking the stamp.
func churn(store: IOASIDStore, set: SetID, seconds: Double) throws {
    let stamp = withUnsafeBytes(of: getpid().bigEndian) { Array($0) }
    let deadline = Date().addingTimeInterval(seconds)
    var mine: [IOASID] = []
    while Date() < deadline {
        if mine.count < 20 && (mine.isEmpty || Bool.random()) {
            let id = try store.allocate(in: set, data: stamp)
            emit(id)
            mine.append(id)
        } else {
            let id = mine.remove(at: Int.random(in: 0..<mine.count))
            guard try store.find(id, in: set).data == stamp else {
                fail("ID \(id) was handed to another process while this one held it", code: 2)
            }
            try store.free(id, in: set)
        }
    }
}

/// Forks with an open store; see the header.
func forkCheck(path: String, reopen: Bool) throws {
    let store = try openExisting(path)
    _ = try store.capacity()
    let pid = fork()
    if pid < 0 { fail("fork failed: errno \(errno)", code: 1) }
    if pid == 0 {
        if reopen {
            let again = try openExisting(path)
            _ = try again.capacity()
            exit(again === store ? 3 : 0)
        }
        _ = try store.capacity()  // must trap: the environment belongs to the parent
        exit(4)
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    // The parent's environment, its map and reader slots, are untouched by the child.
    _ = try store.capacity()
    let signal = status & 0x7f
    emit(signal == 0 ? "child exit \((status >> 8) & 0xff)" : "child signal \(signal)")
}

/// Measures group commit: operations per second and per commit.
func groupCommitProbe(path: String, callers: Int, seconds: Double) async throws {
    let store = try IOASIDStore(path: path)
    let set = try await store.createSet(token: "probe-\(getpid())", quota: UInt32(callers * 4))
    let commits = Locked(0)
    FaultInjection.install(at: path) { point in
        if point == .commit { commits.withLock { $0 += 1 } }
        return nil
    }
    let deadline = Date().addingTimeInterval(seconds)
    let operations = try await withThrowingTaskGroup(of: Int.self) { group in
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
    let count = commits.withLock { $0 }
    emit(String(format: "callers %d: %.0f operations/s, %.1f operations per commit", callers, Double(operations) / seconds, Double(operations) / Double(max(count, 1))))
}
