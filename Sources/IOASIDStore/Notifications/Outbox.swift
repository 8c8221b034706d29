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
    /// Every subscriber with its record, in name order.
    func subscriberRecords() throws -> [(name: String, record: SubscriberRecord)] {
        if let cached = context.state.subscribers { return cached }
        let records = try txn.withCursor(on: schema.subscribers) { cursor in
            var result: [(String, SubscriberRecord)] = []
            try cursor.scan(from: []) { key, reader in
                guard let name = String(validating: key, as: UTF8.self) else {
                    throw IOASIDError(.corruptStore, "malformed subscriber name")
                }
                result.append((name, try decoding("subscriber \(name)") { try SubscriberRecord(decoding: &reader) }))
                return true
            }
            return result
        }
        context.state.subscribers = records
        return records
    }

    func subscriberRecord(_ name: String) throws -> SubscriberRecord {
        let record = try txn.withValue(forKey: Array(name.utf8), in: schema.subscribers) { reader in
            try decoding("subscriber \(name)") { try SubscriberRecord(decoding: &reader) }
        }
        guard let record else { throw IOASIDError(.noSuchSubscriber, "no subscriber named \"\(name)\"") }
        return record
    }

    /// The sequence number the next stored event will get.
    func nextSequence() throws -> UInt64 {
        let afterLast = try txn.withCursor(on: schema.events) { cursor in
            try cursor.last().flatMap { Key.decodeU64($0.key) }.map { $0 + 1 }
        }
        let kept = try txn.withValue(forKey: MetaKey.nextSequence, in: schema.meta) { reader in
            try decoding("next sequence") { try reader.u64() }
        }
        return max(afterLast ?? 1, kept ?? 1)
    }

    /// The highest sequence number handed out so far (0 when none).
    public func lastSequence() throws -> UInt64 { try nextSequence() - 1 }

    /// Visits stored events with sequence numbers in `range`, in order.
    func forEachEvent(in range: ClosedRange<UInt64>, _ body: (UInt64, inout ValueReader) throws -> Bool) throws {
        try txn.withCursor(on: schema.events) { cursor in
            try cursor.scan(from: Key.u64(range.lowerBound)) { key, reader in
                guard let sequence = Key.decodeU64(key) else { throw IOASIDError(.corruptStore, "malformed event key") }
                guard sequence <= range.upperBound else { return false }
                return try body(sequence, &reader)
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
        _ kind: Event.Kind, set: SetID, token: String,
        id: IOASID? = nil, quota: UInt32? = nil, guest: UInt32? = nil, destroy: Bool? = nil
    ) throws -> UInt64? {
        guard try subscriberRecords().contains(where: { $0.record.filter.matches(kind, set: set) }) else { return nil }
        let sequence = try nextSequence()
        let event = Event(
            sequence: sequence, kind: kind, timestamp: IOASIDStore.nowMillis(), set: set, token: token,
            id: id, quota: quota, guest: guest, destroy: destroy
        )
        try txn.put(EventCoding.encode(event), forKey: Key.u64(sequence), in: schema.events)
        return sequence
    }

    /// Deletes the events in `range` that no subscriber still has to see,
    /// keeping the sequence counter where it was.
    func pruneEvents(in range: ClosedRange<UInt64>) throws {
        let subscribers = try subscriberRecords().map(\.record)
        let next = try nextSequence()
        var obsolete: [UInt64] = []
        try forEachEvent(in: range) { sequence, reader in
            let (kind, set) = try decoding("event \(sequence)") { try EventCoding.kindAndSet(&reader) }
            if !subscribers.contains(where: { $0.acknowledgedThrough < sequence && $0.filter.matches(kind, set: set) }) {
                obsolete.append(sequence)
            }
            return true
        }
        for sequence in obsolete { try txn.delete(Key.u64(sequence), in: schema.events) }
        if !obsolete.isEmpty {
            var w = ByteWriter()
            w.u64(next)
            try txn.put(w.bytes, forKey: MetaKey.nextSequence, in: schema.meta)
        }
    }
}
