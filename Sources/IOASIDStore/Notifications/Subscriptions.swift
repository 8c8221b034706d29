import IOASIDMigrations
import LMDB

/// Durable, named subscribers: at-least-once, in-order delivery with
/// cumulative acknowledgement.
extension IOASIDReading where Self: ~Copyable {
    /// Every subscriber, with its lag and the age of its oldest unacknowledged event.
    public func subscribers() throws -> [SubscriberInfo] {
        try subscriberRecords().map { try info($0.name, $0.record) }
    }

    /// One subscriber.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSubscriber``.
    public func subscriber(_ name: String) throws -> SubscriberInfo {
        try info(name, try subscriberRecord(name))
    }

    /// The events the subscriber has not acknowledged, in order, starting after
    /// `after` (default: its acknowledged-through sequence), at most `limit`.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSubscriber``.
    public func pendingEvents(for name: String, after: UInt64? = nil, limit: Int = .max) throws -> [Event] {
        let record = try subscriberRecord(name)
        let start = max(after ?? 0, record.acknowledgedThrough)
        guard start < .max, limit > 0 else { return [] }
        var events: [Event] = []
        try forEachDecodedEvent(in: (start + 1)...UInt64.max) { event in
            if record.takes(kind: event.kind.code, set: event.set.rawValue) { events.append(event) }
            return events.count < limit
        }
        return events
    }

    private func info(_ name: String, _ record: SubscriberRecord) throws -> SubscriberInfo {
        var lag = 0
        var oldest: UInt64?
        if record.acknowledgedThrough < .max {
            try forEachEvent(in: (record.acknowledgedThrough + 1)...UInt64.max) { sequence, reader in
                let event = try EventRecord(decoding: &reader)
                if record.takes(kind: event.kind, set: event.set) {
                    lag += 1
                    if oldest == nil { oldest = event.timestamp }
                }
                return true
            }
        }
        return SubscriberInfo(
            name: name, filter: EventFilter(record), acknowledgedThrough: record.acknowledgedThrough,
            lag: lag, oldestUnacknowledged: oldest
        )
    }
}

extension WriteTransaction {
    /// Creates a durable subscriber that receives, from now on, every event
    /// its filter takes. It sees only events committed after it subscribed.
    ///
    /// While it has not acknowledged a FREE of a set its filter takes, that ID
    /// stays free-pending.
    ///
    /// - Throws: ``IOASIDError/Code/invalidArgument`` (a name that is not a name; see ``Names``),
    ///   ``IOASIDError/Code/duplicateSubscriber``, ``IOASIDError/Code/noSuchSet``.
    public func subscribe(_ name: String, filter: EventFilter = .all) throws {
        try operation {
            try Names.check(name, as: "subscriber name")
            if try txn.contains(StoreLayout.subscriberKey(name), in: schema.subscribers) {
                throw IOASIDError(.duplicateSubscriber, "a subscriber named \"\(Names.escaped(name))\" exists")
            }
            for set in filter.sets ?? [] { _ = try setRecord(set) }
            let record = SubscriberRecord(acknowledgedThrough: try lastSequence(), sets: filter.storedSets, kindMask: filter.storedKindMask)
            try putSubscriber(record, name)
        }
    }

    /// Acknowledges every event up to and including `sequence` (cumulative).
    ///
    /// Events no subscriber still needs are deleted; IDs whose FREE this
    /// acknowledges are reclaimed when nothing else holds them back. An
    /// acknowledgement at or below the current one changes nothing.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSubscriber``, ``IOASIDError/Code/invalidArgument``
    ///   (a sequence number not handed out yet).
    public func acknowledge(_ name: String, through sequence: UInt64) throws {
        try operation {
            var record = try subscriberRecord(name)
            let last = try lastSequence()
            guard sequence <= last else {
                throw IOASIDError(.invalidArgument, "cannot acknowledge \(sequence): the last event is \(last)")
            }
            guard sequence > record.acknowledgedThrough else { return }
            let range = (record.acknowledgedThrough + 1)...sequence
            let freed = try freedIDs(in: range, taken: record)
            record.acknowledgedThrough = sequence
            try putSubscriber(record, name)
            try pruneEvents(in: range)
            for id in freed { try reclaimIfReleased(id) }
        }
    }

    /// Removes a subscriber, releasing every ID it was holding back.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSubscriber``.
    public func unsubscribe(_ name: String) throws {
        try operation {
            let record = try subscriberRecord(name)
            try remove(StoreLayout.subscriberKey(name), in: schema.subscribers)
            context.state.subscribers = nil
            let last = try lastSequence()
            guard record.acknowledgedThrough < last else { return }
            let range = (record.acknowledgedThrough + 1)...last
            let freed = try freedIDs(in: range, taken: record)
            try pruneEvents(in: range)
            for id in freed { try reclaimIfReleased(id) }
        }
    }

    /// Writes a subscriber record.
    func putSubscriber(_ record: SubscriberRecord, _ name: String) throws {
        try put(record.encoded(), StoreLayout.subscriberKey(name), in: schema.subscribers)
        context.state.subscribers = nil
    }

    /// The IDs of the FREE events in `range` that the subscriber takes.
    private func freedIDs(in range: ClosedRange<UInt64>, taken subscriber: SubscriberRecord) throws -> [IOASID] {
        var ids: [IOASID] = []
        try forEachDecodedEvent(in: range) { event in
            if event.kind == .free, subscriber.takes(kind: event.kind.code, set: event.set.rawValue), let id = event.id { ids.append(id) }
            return true
        }
        return ids
    }
}
