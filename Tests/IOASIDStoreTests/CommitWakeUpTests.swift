import Foundation
import IOASIDStore
import IOASIDTestSupport
import LMDB
import Testing

/// The cross-process wake-up of event streams: an inotify watch of `data.mdb`.
@Suite("Event streams wake on other processes' commits")
struct CommitWakeUpTests {
    @Test("A commit by another process reaches an EventStream at once, not at its (here 30 s) poll")
    func otherProcessCommitWakesStream() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        let store = try IOASIDStore(path: path)
        try store.subscribe("agent", filter: .all)
        let stream = store.events(for: "agent", pollInterval: .seconds(30))
        let consumer = Task { () -> Date? in
            var iterator = stream.makeAsyncIterator()
            guard try await iterator.next() != nil else { return nil }
            return Date()
        }
        try await Task.sleep(for: .milliseconds(300))
        let started = Date()
        let result = try CLI.run(["--store", path, "alloc", "--set", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let deadline = Task {
            try await Task.sleep(for: .seconds(10))
            consumer.cancel()
        }
        let arrived = try await consumer.value
        deadline.cancel()
        let arrival = try #require(arrived, "the event never arrived")
        // The CLI process itself takes tens of milliseconds; a poll would take 30 s.
        #expect(arrival.timeIntervalSince(started) < 5, "event after \(arrival.timeIntervalSince(started)) s")
    }

    @Test("The watch sees writes to the file by any process, and reports none without them")
    func fileChangeWatch() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let file = dir.child("f")
        try "a".write(toFile: file, atomically: false, encoding: .utf8)
        let watch = try FileChangeWatch(path: file)
        #expect(!watch.wait(milliseconds: 50))
        let handle = try #require(FileHandle(forWritingAtPath: file))
        handle.write(Data("b".utf8))
        try handle.close()
        #expect(watch.wait(milliseconds: 1000))
        #expect(!watch.wait(milliseconds: 50))
        #expect(throws: LMDBError.self) { try FileChangeWatch(path: dir.child("missing")) }
    }
}
