/// The events of a durable subscriber as an `AsyncSequence`.
///
/// Starts after the subscriber's acknowledged-through sequence, so after a
/// restart every unacknowledged event is delivered again with its original
/// sequence number. Wakes promptly after commits made through the same
/// ``IOASIDStore`` instance, and after commits made by other instances or
/// processes through an inotify watch of `data.mdb` (Linux); `pollInterval`
/// is the fallback poll where that watch is not available, and a safety net. Iteration never
/// acknowledges: call `acknowledge(_:through:)` once an event is handled.
/// Ends (returns `nil`) when the task is cancelled; throws when the subscriber is removed.
/// No transaction is held across an `await`.
public struct EventStream: AsyncSequence, Sendable {
    /// Every element is one committed event.
    public typealias Element = Event

    let store: IOASIDStore
    let name: String
    let pollInterval: Duration

    /// Creates an iterator positioned after the subscriber's acknowledged events.
    public func makeAsyncIterator() -> Iterator {
        Iterator(store: store, name: name, pollInterval: pollInterval)
    }

    /// Reads events in batches, waiting for new commits when it has none.
    public struct Iterator: AsyncIteratorProtocol {
        let store: IOASIDStore
        let name: String
        let pollInterval: Duration
        var position: UInt64?
        var buffer: [Event] = []

        init(store: IOASIDStore, name: String, pollInterval: Duration) {
            self.store = store
            self.name = name
            self.pollInterval = pollInterval
        }

        /// The next event, waiting for one to commit if necessary.
        public mutating func next() async throws -> Event? {
            guard try await fill(limit: 512) else { return nil }
            let event = buffer.removeFirst()
            position = event.sequence
            return event
        }

        /// Every event available now (at most `limit`), waiting for at least one
        /// to commit if there are none; `nil` when the task is cancelled.
        /// Lets a consumer handle and acknowledge events a batch at a time.
        public mutating func nextBatch(limit: Int = 512) async throws -> [Event]? {
            guard try await fill(limit: limit) else { return nil }
            let batch = Array(buffer.prefix(limit))
            buffer.removeFirst(batch.count)
            position = batch.last?.sequence ?? position
            return batch
        }

        private mutating func fill(limit: Int) async throws -> Bool {
            store.watchForCommits()
            while buffer.isEmpty {
                if Task.isCancelled { return false }
                let generation = store.changeSignal.generation
                buffer = try store.pendingEvents(for: name, after: position, limit: Swift.max(1, limit))
                if buffer.isEmpty { await store.changeSignal.wait(after: generation, timeout: pollInterval) }
            }
            return true
        }
    }
}
