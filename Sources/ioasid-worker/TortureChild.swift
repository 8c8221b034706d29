import Foundation
import IOASIDStore
import IOASIDTestSupport
import LMDB
import Synchronization

/// The crash-torture child: a random workload of every operation on one store,
/// journaling each operation it has seen succeed. It runs until it is killed
/// (by the parent, or by itself at a named failpoint).
struct TortureChild {
    let store: String
    let journal: String
    let seed: UInt64
    let failpoint: String?

    /// Counters of the failpoints, shared with the LMDB fault hook.
    private static let hits = Locked([String: Int]())
    private static let importing = Atomic<Bool>(false)

    func run() throws {
        let (point, target) = parseFailpoint()
        if point == "before-commit" || point == "mid-import" {
            FaultInjection.install(at: store) { lmdbPoint in
                if point == "before-commit", lmdbPoint == .commit, Self.hit(point) == target { raise(SIGKILL) }
                if point == "mid-import", lmdbPoint == .put, Self.importing.load(ordering: .relaxed), Self.hit(point) == target {
                    raise(SIGKILL)
                }
                return nil
            }
        }
        let log = try Journal(path: journal)
        let store = try IOASIDStore(path: self.store, options: {
            var o = IOASIDStore.Options()
            o.creation = .openExisting
            return o
        }())
        var rng = SplitMix(seed: seed)
        let scratch = NSTemporaryDirectory() + "ioasid-torture-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        // A migration interrupted by an earlier kill leaves its set frozen: abort it.
        for set in try store.sets() where set.isFrozen {
            try perform(log, "abort \(set.id)") { try store.abortMigration(of: set.id); return "\(set.id)" }
        }
        var operation = 0
        while true {
            operation += 1
            let all = try store.sets()
            let live = all.filter { !$0.isDestroyPending && !$0.isFrozen }
            let vms = live.filter { !$0.isSystem }
            let set = live.randomElement(using: &rng)!
            let ids = try store.ids(in: set.id, limit: 64)
            let allocated = try ids.filter { try store.find($0).state == .allocated }
            switch rng.next() % 20 {
            case 0 where vms.count < 6:
                let token = "vm:\(rng.next() % 100_000)"
                let quota = UInt32(rng.next() % 64 + 1)
                try perform(log, "create \(token) \(quota)") { "\(try store.createSet(token: token, quota: quota)) \(token) \(quota)" }
            case 1...5:
                let guest = rng.next() % 2 == 0 ? UInt32(rng.next() % 200 + 1) : nil
                try perform(log, "alloc \(set.id)") {
                    let id = try store.allocate(in: set.id, guest: guest)
                    return "\(set.id) \(id)" + (guest.map { " \($0)" } ?? "")
                }
            case 6...8 where !allocated.isEmpty:
                let id = allocated.randomElement(using: &rng)!
                try perform(log, "free \(set.id) \(id)") { try store.free(id, in: set.id); return "\(set.id) \(id)" }
            case 9 where !allocated.isEmpty:
                let id = allocated.randomElement(using: &rng)!
                let holder = "h\(rng.next() % 3)"
                try perform(log, "hold \(set.id) \(id) \(holder)") { try store.retain(id, in: set.id, holder: holder); return "\(set.id) \(id) \(holder)" }
            case 10:
                // Holds keep freed IDs (and destroyed sets) pending: release from any set, live or not.
                let owner = all.randomElement(using: &rng)!
                guard let id = try store.ids(in: owner.id, limit: 64).randomElement(using: &rng),
                    let holder = try store.holders(of: id).first
                else { continue }
                try perform(log, "release \(owner.id) \(id) \(holder)") { try store.release(id, in: owner.id, holder: holder); return "\(owner.id) \(id) \(holder)" }
            case 11:
                let quota = max(1, set.allocated + UInt32(rng.next() % 16))
                try perform(log, "quota \(set.id) \(quota)") { try store.adjustQuota(of: set.id, to: quota); return "\(set.id) \(quota)" }
            case 12 where !set.isSystem && rng.next() % 3 == 0:
                let destroy = rng.next() % 2 == 0
                try perform(log, "freeset \(set.id)") { try store.freeSet(set.id, destroy: destroy); return "\(set.id) \(destroy ? 1 : 0)" }
            case 13 where !allocated.isEmpty:
                let id = allocated.randomElement(using: &rng)!
                let guest = UInt32(rng.next() % 200 + 1)
                try perform(log, "attach \(set.id) \(id)") { try store.attach(guest: guest, to: id, in: set.id); return "\(set.id) \(id) \(guest)" }
            case 14 where !allocated.isEmpty:
                let id = allocated.randomElement(using: &rng)!
                try perform(log, "detach \(set.id) \(id)") { "\(set.id) \(id) \(try store.detach(id, in: set.id))" }
            case 15...17:
                let events = try store.pendingEvents(for: "torture", limit: Int(rng.next() % 40 + 1))
                guard let last = events.last else { continue }
                for event in events {
                    log.append("S \(event.sequence) \(event.kind.rawValue) \(event.id?.rawValue ?? 0)", sync: false)
                }
                log.append("S-end", sync: true)
                if point == "before-ack", Self.hit(point) == target { raise(SIGKILL) }
                try perform(log, "ack \(last.sequence)") { try store.acknowledge("torture", through: last.sequence); return "\(last.sequence)" }
            case 18 where !set.isSystem && set.allocated > 0 && vms.count < 10:
                // Live migration into the same store: freeze and export, import as a new set, then complete or abort.
                let file = scratch + "-\(operation).jsonl"
                defer { try? FileManager.default.removeItem(atPath: file) }
                try perform(log, "freeze \(set.id)") {
                    _ = FileManager.default.createFile(atPath: file, contents: nil)
                    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
                    defer { try? handle.close() }
                    _ = try store.exportSet(set.id, to: { try handle.write(contentsOf: $0) })
                    return "\(set.id)"
                }
                let token = String(set.token.split(separator: "~")[0]) + "~\(rng.next() % 100_000)"
                try perform(log, "import \(token)") {
                    Self.importing.store(true, ordering: .relaxed)
                    defer { Self.importing.store(false, ordering: .relaxed) }
                    let result = try store.importSet(from: file, token: token)
                    let placed = try store.ids(in: result.set).map { "\($0):\(try store.find($0).guest.map(String.init) ?? "-")" }
                    return "\(result.set) \(token) \(try store.set(result.set).quota) \(placed.joined(separator: ","))"
                }
                if rng.next() % 2 == 0 {
                    try perform(log, "complete \(set.id)") { try store.completeMigration(of: set.id); return "\(set.id)" }
                } else {
                    try perform(log, "abort \(set.id)") { try store.abortMigration(of: set.id); return "\(set.id)" }
                }
            case 19:
                // Concurrent async allocations through the group-commit writer, half from tasks on
                // its executor: each journals its ID as soon as its call returns (durable by then).
                let count = Int(rng.next() % 12 + 2)
                log.append("I allocs \(set.id) \(count)", sync: false)
                try Self.allocateConcurrently(count, in: set.id, store: store, log: log)
                log.append("D allocs-end \(set.id)", sync: true)
            default:
                continue
            }
        }
    }

    /// Runs `count` async allocations in `set` at once, every other one on the store's
    /// writer executor; journals `D alloc SET ID` for each as it returns (the burst's
    /// `D allocs-end` line syncs them), and waits for all.
    /// A refusal by a rule (quota) journals nothing.
    private static func allocateConcurrently(_ count: Int, in set: SetID, store: IOASIDStore, log: Journal) throws {
        let outcome = Locked<Result<Void, IOASIDError>?>(nil)
        Task.detached {
            var result = Result<Void, IOASIDError>.success(())
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for k in 0..<count {
                        let run: @Sendable () async throws -> Void = {
                            do {
                                let id = try await store.allocate(in: set)
                                // Not synced: a line written before a SIGKILL is in the file for the parent,
                                // and an fdatasync here would hold the writer thread between commits.
                                log.append("D alloc \(set) \(id)", sync: false)
                            } catch let error as IOASIDError where error.category == .refused || error.category == .notFound {
                                return
                            }
                        }
                        if k % 2 == 0 {
                            group.addTask(executorPreference: store.writerExecutor, operation: run)
                        } else {
                            group.addTask(operation: run)
                        }
                    }
                    try await group.waitForAll()
                }
            } catch {
                result = .failure(error as? IOASIDError ?? IOASIDError(.internalError, "\(error)"))
            }
            outcome.withLockSignalling { [result] in $0 = result }
        }
        try outcome.withLock(waitingUntil: { $0 != nil }) { $0! }.get()
    }

    /// Journals the intent, runs the operation, and journals its success (synced).
    /// A refusal by a rule is fine and journals nothing more.
    private func perform(_ log: Journal, _ intent: String, _ body: () throws -> String) throws {
        log.append("I \(intent)", sync: false)
        let detail: String
        do {
            detail = try body()
        } catch let error as IOASIDError where error.category == .refused || error.category == .notFound {
            return
        }
        let (point, target) = parseFailpoint()
        if point == "after-commit", Self.hit(point) == target { raise(SIGKILL) }
        log.append("D \(intent.split(separator: " ")[0]) \(detail)", sync: true)
    }

    private func parseFailpoint() -> (String, Int) {
        guard let failpoint, let colon = failpoint.firstIndex(of: ":"), let n = Int(failpoint[failpoint.index(after: colon)...]) else {
            return ("", 0)
        }
        return (String(failpoint[..<colon]), n)
    }

    private static func hit(_ point: String) -> Int {
        hits.withLock { counts in
            counts[point, default: 0] += 1
            return counts[point]!
        }
    }
}

