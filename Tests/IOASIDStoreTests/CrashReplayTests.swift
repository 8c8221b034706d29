import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

/// Real processes killed with SIGKILL, then the store reopened.
@Suite("Crash and replay with real processes")
struct CrashReplayTests {
    /// Reads from `handle` until `count` complete lines have arrived (or it closes).
    static func readLines(_ handle: FileHandle, count: Int) -> [String] {
        var buffer = Data()
        var lines: [String] = []
        while lines.count < count {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                lines.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                buffer.removeSubrange(buffer.startIndex...newline)
            }
        }
        return lines
    }

    @Test("Killed mid-workload: every committed change has its event, numbered without gaps, and nothing else", arguments: [1, 2, 3])
    func killedWriter(round: Int) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        do {
            let store = try IOASIDStore(path: path)
            _ = try store.createSet(token: "vm", quota: 100_000)
            try store.subscribe("audit")
        }
        let worker = try CLI.start("ioasid-worker", ["churn", path, "2", "30"])
        // Let it commit a few hundred operations, then kill it wherever it is.
        let acknowledged = Self.readLines(worker.out.fileHandleForReading, count: 100 * round)
        kill(worker.process.processIdentifier, SIGKILL)
        worker.process.waitUntilExit()
        #expect(worker.process.terminationReason == .uncaughtSignal)
        let printed = Set(acknowledged.compactMap { UInt32($0) })

        let store = try IOASIDStore(path: path)
        let events = try store.pendingEvents(for: "audit")
        #expect(events.map(\.sequence) == Array(1...UInt64(events.count)), "sequence numbers are dense")
        // Replay the outbox and compare with the committed state.
        var allocated = Set<UInt32>()
        var pending = Set<UInt32>()
        for event in events {
            let id = try #require(event.id).rawValue
            switch event.kind {
            case .alloc:
                #expect(!allocated.contains(id) && !pending.contains(id), "ALLOC of an ID in use")
                allocated.insert(id)
            case .free:
                #expect(allocated.remove(id) != nil, "FREE of an ID not allocated")
                pending.insert(id)
            default:
                Issue.record("unexpected \(event.kind)")
            }
        }
        var stored: [UInt32: IDState] = [:]
        for id in try store.ids(in: 2) { stored[id.rawValue] = try store.find(id).state }
        #expect(Set(stored.filter { $0.value == .allocated }.keys) == allocated)
        #expect(Set(stored.filter { $0.value == .freePending }.keys) == pending)
        #expect(printed.isSubset(of: allocated.union(pending)), "an allocation that returned success was lost")
        #expect(try store.set(2).allocated == UInt32(allocated.count + pending.count))
    }

    @Test("A consumer killed after delivery but before its acknowledgement gets the same events again")
    func killedConsumer() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        do {
            let store = try IOASIDStore(path: path)
            try store.subscribe("consumer")
            _ = try store.createSet(token: "vm", quota: 100_000)
            try store.write { tx in for _ in 0..<300 { _ = try tx.allocate(in: 2) } }
        }
        let writer = try CLI.start("ioasid-worker", ["alloc", path, "2", "400"])
        let tail = try CLI.start("ioasid", ["--store", path, "events", "tail", "consumer", "--follow", "--ack", "--poll", "20"])
        let delivered = Self.readLines(tail.out.fileHandleForReading, count: 500)
        kill(tail.process.processIdentifier, SIGKILL)
        tail.process.waitUntilExit()
        writer.process.waitUntilExit()
        #expect(writer.process.terminationStatus == 0)
        // `events tail` prints the event objects of docs/cli-json.md (times as RFC 3339).
        struct Delivered: Decodable {
            let sequence: UInt64
            let kind: String
            let set: UInt32
            let id: UInt32?
            let time: String
        }
        let decoder = JSONDecoder()
        let seen = try delivered.map { try decoder.decode(Delivered.self, from: Data($0.utf8)) }
        #expect(seen.map(\.sequence) == Array(1...UInt64(seen.count)), "delivered in order without gaps")

        let store = try IOASIDStore(path: path)
        let acked = try store.subscriber("consumer").acknowledgedThrough
        let again = try store.pendingEvents(for: "consumer")
        let last = try store.status().lastSequence
        #expect(last == 701)
        #expect(acked <= UInt64(seen.count))
        #expect(again.map(\.sequence) == Array((acked + 1)...last), "everything not acknowledged comes again")
        for event in seen where event.sequence > acked {
            let redelivered = again.first { $0.sequence == event.sequence }
            #expect(redelivered?.kind.rawValue == event.kind && redelivered?.id?.rawValue == event.id && redelivered?.set?.rawValue == event.set,
                    "redelivered with its original sequence number")
        }
    }
}
