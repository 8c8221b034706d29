import Foundation
import IOASIDStore
import IOASIDTestSupport
import LMDB

/// `ioasid-worker ordered-consumer STORE NAME LOG SEED [drain]`: consumes
/// NAME's events in random batches, appending each event's sequence to LOG
/// (before acknowledging it), and checks in the same read transaction that
/// every subscriber NAME runs after has acknowledged each event it is handed
/// (writing `VIOLATION …` to LOG and exiting 2 otherwise). With `drain`, exits
/// 0 once NAME has acknowledged the last event; otherwise runs until killed.
func orderedConsumer(path: String, name: String, log: String, seed: UInt64, drain: Bool) throws {
    let store = try openExisting(path)
    let fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0o600)
    guard fd >= 0 else { fail("cannot open \(log): errno \(errno)", code: 1) }
    func append(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
    var random = SplitMix(seed: seed)
    while true {
        let limit = Int(random.next() % 20) + 1
        let (events, acknowledgements, done) = try store.read { tx in
            let me = try tx.subscriber(name)
            let events = try tx.pendingEvents(for: name, limit: limit)
            let acknowledgements = try me.after.map { ($0, try tx.subscriber($0).acknowledgedThrough) }
            return (events, acknowledgements, me.acknowledgedThrough >= (try tx.lastSequence()))
        }
        for event in events {
            for (predecessor, acknowledged) in acknowledgements where acknowledged < event.sequence {
                append("VIOLATION \(name) was handed \(event.sequence) while \(predecessor) had acknowledged only \(acknowledged)")
                exit(2)
            }
            append("\(event.sequence)")
        }
        if let last = events.last {
            try store.acknowledge(name, through: last.sequence)
        } else if drain && done {
            return
        } else {
            usleep(1000)
        }
    }
}

/// `ioasid-worker churn-size STORE OPS MODE`: OPS allocations and frees in
/// batches (500 of each per commit), MODE `none` (no subscriber) or `lapsed`
/// (a gating subscriber that never acknowledges and lapses past 10,000 events,
/// and a live one that acknowledges everything one batch late). Prints
/// `ops N mode M bytes B pages P lastSequence S events E seconds T`.
func churnSize(path: String, operations: Int, mode: String) throws {
    var options = IOASIDStore.Options()
    options.capacity = 1 << 20
    options.systemQuota = 1024
    let store = try IOASIDStore(path: path, options: options)
    let set = try store.createSet(token: "churn", quota: 4096)
    if mode == "lapsed" {
        try store.subscribe("live", options: SubscriptionOptions())
        try store.subscribe("stuck", options: SubscriptionOptions(maxLag: 10_000))
    }
    let started = Date()
    let batch = 500
    var previous: [IOASID] = []
    var acknowledgeThrough: UInt64 = 0
    var done = 0
    while done < operations {
        let count = min(batch, max(1, (operations - done) / 2))
        let freeing = previous
        let (allocated, last) = try store.write { tx -> ([IOASID], UInt64) in
            if mode == "lapsed", acknowledgeThrough > 0 { try tx.acknowledge("live", through: acknowledgeThrough) }
            let ids = try (0..<count).map { _ in try tx.allocate(in: set) }
            for id in freeing { _ = try tx.free(id, in: set) }
            return (ids, try tx.lastSequence())
        }
        done += count + freeing.count
        previous = allocated
        acknowledgeThrough = last
    }
    if mode == "lapsed" {
        let stuck = try store.subscriber("stuck")
        guard stuck.state == .lapsed else { fail("the stuck subscriber did not lapse", code: 2) }
    }
    let seconds = Date().timeIntervalSince(started)
    let bytes = (try FileManager.default.attributesOfItem(atPath: path + "/data.mdb")[.size] as? Int) ?? 0
    let events = try store.rawDump()["events"]?.count ?? 0
    let status = try store.status()
    emit(String(format: "ops %d mode %@ bytes %d lastSequence %llu events %d freePending %llu seconds %.1f", done, mode, bytes, status.lastSequence, events, status.freePending, seconds))
}
