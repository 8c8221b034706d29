import IOASIDMigrations
import LMDB

/// The write-ahead outbox: events are appended in the same write transaction
/// as the change they describe, so a change and its event commit together or
/// not at all.
///
/// An event is stored only when at least one subscriber's filter takes it, and
/// deleted once every such subscriber has acknowledged it, so the outbox holds
/// exactly the events someone still has to see. Sequence numbers are dense
/// across stored events and never go backwards, even when the outbox empties.
extension IOASIDReading where Self: ~Copyable {
    /// Every subscriber with its record, in name order (read once per transaction).
    func subscriberRecords() throws -> [(name: String, record: SubscriberRecord)] {
        if let cached = context.state.subscribers { return cached }
        let records = try txn.withCursor(on: schema.subscribers) { cursor in
            var result: [(String, SubscriberRecord)] = []
            try cursor.forEach { entry in
                guard let name = entry.keyText() else {
                    throw IOASIDError.undecodable(database: "subscribers", key: entry.keyBytes())
                }
                result.append((name, try Self.decode(entry, in: "subscribers") { try SubscriberRecord(decoding: &$0) }))
                return true
            }
            return result
        }
        context.state.subscribers = records
        return records
    }

    func subscriberRecord(_ name: String) throws -> SubscriberRecord {
        guard let record = try record(StoreLayout.subscriberKey(name), in: schema.subscribers, { try SubscriberRecord(decoding: &$0) }) else {
            throw IOASIDError(.noSuchSubscriber, "no subscriber named \"\(Names.escaped(name))\"")
        }
        return record
    }

    /// The sequence number the next stored event will get.
    func nextSequence() throws -> UInt64 {
        if let cached = context.state.nextSequence { return cached }
        let afterLast = try txn.withCursor(on: schema.events) { cursor in
            try cursor.withLast { entry -> UInt64 in
                guard let sequence = entry.keyU64() else {
                    throw IOASIDError.undecodable(database: "events", key: entry.keyBytes())
                }
                return sequence + 1
            }
        }
        let kept = try metaU64(StoreLayout.MetaKey.nextSequence)
        let next = max(afterLast ?? 1, kept ?? 1)
        context.state.nextSequence = next
        return next
    }

    /// The highest sequence number handed out so far (0 when none).
    public func lastSequence() throws -> UInt64 { try nextSequence() - 1 }

    /// Visits the stored events with sequence numbers in `range`, in order,
    /// with their (sealed, checked) record readers.
    func forEachEvent(in range: ClosedRange<UInt64>, _ body: (UInt64, inout ValueReader) throws -> Bool) throws {
        try txn.withCursor(on: schema.events) { cursor in
            try cursor.forEach(from: StoreLayout.sequenceKey(range.lowerBound)) { entry in
                guard let sequence = entry.keyU64() else {
                    throw IOASIDError.undecodable(database: "events", key: entry.keyBytes())
                }
                guard sequence <= range.upperBound else { return false }
                guard var reader = entry.sealedReader() else {
                    throw IOASIDError(.corruptStore, "event \(sequence) in database events is damaged (checksum mismatch)")
                }
                return try body(sequence, &reader)
            }
        }
    }

    /// Visits the stored events in `range`, decoded.
    func forEachDecodedEvent(in range: ClosedRange<UInt64>, _ body: (Event) throws -> Bool) throws {
        let store = try storeID()
        try forEachEvent(in: range) { sequence, reader in
            let record: EventRecord
            do { record = try EventRecord(decoding: &reader) } catch {
                throw IOASIDError.undecodable(database: "events", key: StoreLayout.sequenceKey(sequence))
            }
            do { return try body(try Event(store: store, sequence: sequence, record: record)) } catch is DecodingFailure {
                throw IOASIDError.undecodable(database: "events", key: StoreLayout.sequenceKey(sequence))
            }
        }
    }
}

extension WriteTransaction {
    /// Appends an event if any subscriber's filter takes it.
    ///
    /// - Returns: the event's sequence number, or `nil` when no subscriber wants it.
    @discardableResult
    func emit(
        _ kind: Event.Kind, set: SetID?, token: String,
        id: IOASID? = nil, quota: UInt32? = nil, guest: UInt32? = nil, destroy: Bool? = nil,
        capacity: UInt32? = nil, subscriber: String? = nil
    ) throws -> UInt64? {
        guard try subscriberRecords().contains(where: { $0.record.takes(kind: kind.code, set: set?.rawValue) }) else { return nil }
        let sequence = try nextSequence()
        let record = EventRecord(
            kind: kind.code, timestamp: IOASIDStore.nowMillis(), set: set?.rawValue, token: token, epoch: try epoch(),
            id: id?.rawValue, quota: quota, guest: guest, destroy: destroy, capacity: capacity, subscriber: subscriber
        )
        try put(record.encoded(), StoreLayout.sequenceKey(sequence), in: schema.events)
        context.state.nextSequence = sequence + 1
        return sequence
    }

    /// Deletes the events in `range` that no subscriber still has to see,
    /// keeping the sequence counter where it was.
    func pruneEvents(in range: ClosedRange<UInt64>) throws {
        let subscribers = try subscriberRecords().map(\.record)
        let next = try nextSequence()
        var obsolete: [UInt64] = []
        try forEachEvent(in: range) { sequence, reader in
            let (kind, set) = try EventRecord.kindAndSet(decoding: &reader)
            if !subscribers.contains(where: { $0.acknowledgedThrough < sequence && $0.takes(kind: kind, set: set) }) {
                obsolete.append(sequence)
            }
            return true
        }
        for sequence in obsolete { try remove(StoreLayout.sequenceKey(sequence), in: schema.events) }
        if !obsolete.isEmpty { try putMeta(StoreLayout.MetaKey.nextSequence, u64: next) }
    }
}
