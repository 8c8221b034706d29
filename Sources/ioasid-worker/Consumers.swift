import Foundation
import IOASIDStore
import IOASIDTestSupport
import LMDB

/// `ioasid-worker ordered-consumer STORE NAME LOG SEED [drain]`: consumes
/// NAME's events in random batches, appending each event's sequence to LOG
/// (before acknowledging it), and checks in the same read transaction that
/// every subscriber NAME runs after has acknowledged each event it is handed
/// (writing `VIOLATION …` to LOG and exiting 2 otherwise). With `drain`, exits
/// 0 once nothing is visible to NAME (what its predecessors have not
/// acknowledged yet waits for another drain); otherwise runs until killed.
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
        let (events, acknowledgements) = try store.read { tx in
            let me = try tx.subscriber(name)
            let events = try tx.pendingEvents(for: name, limit: limit)
            return (events, try me.after.map { ($0, try tx.subscriber($0).acknowledgedThrough) })
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
        } else if drain {
            return
        } else {
            usleep(1000)
        }
    }
}

/// `ioasid-worker churn-size STORE OPS MODE`: allocates OPS IDs in one set,
/// then frees them all, 1,000 per commit, in a new store. MODE `none`: no
/// subscriber; `lapsed`: a gating subscriber that never acknowledges (it lapses
/// past 10,000 events) and a live one that acknowledges every commit's events
/// one commit late; `stuck`: only the one that never acknowledges, without a
/// limit (the problem the lag limits solve). Prints the store's size and outbox.
func churnSize(path: String, operations: Int, mode: String) throws {
    var options = IOASIDStore.Options()
    options.capacity = 1 << 20
    options.systemQuota = 1024
    let store = try IOASIDStore(path: path, options: options)
    let set = try store.createSet(token: "churn", quota: UInt32(min(operations, Int(options.capacity) - 1025)))
    switch mode {
    case "lapsed":
        try store.subscribe("live", options: SubscriptionOptions())
        try store.subscribe("stuck", options: SubscriptionOptions(maxLag: 10_000))
    case "stuck":
        try store.subscribe("stuck", options: SubscriptionOptions())
    default:
        break
    }
    let started = Date()
    let batch = 1000
    var acknowledgeThrough: UInt64 = 0
    var allocated: [IOASID] = []
    allocated.reserveCapacity(operations)
    func commit(_ body: (borrowing WriteTransaction) throws -> Void) throws {
        acknowledgeThrough = try store.write { tx -> UInt64 in
            if mode == "lapsed", acknowledgeThrough > 0 { try tx.acknowledge("live", through: acknowledgeThrough) }
            try body(tx)
            return try tx.lastSequence()
        }
    }
    while allocated.count < operations {
        let count = min(batch, operations - allocated.count)
        try commit { tx in for _ in 0..<count { allocated.append(try tx.allocate(in: set)) } }
    }
    var index = 0
    while index < allocated.count {
        let slice = allocated[index..<min(index + batch, allocated.count)]
        try commit { tx in for id in slice { _ = try tx.free(id, in: set) } }
        index += slice.count
    }
    if mode == "lapsed" {
        try store.acknowledge("live", through: try store.status().lastSequence)
        guard try store.subscriber("stuck").state == .lapsed else { fail("the stuck subscriber did not lapse", code: 2) }
    }
    let seconds = Date().timeIntervalSince(started)
    let status = try store.status()
    let events = try store.rawDump()["events"]?.count ?? 0
    emit(String(
        format: "ops %d mode %@ bytes %d lastSequence %llu outbox %d freePending %llu seconds %.1f",
        operations * 2, mode, fileSize(path + "/data.mdb"), status.lastSequence, events, status.freePending, seconds
    ))
}

func fileSize(_ path: String) -> Int {
    (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
}
