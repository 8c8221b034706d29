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
        try forEachEvent(in: (start + 1)...UInt64.max) { sequence, reader in
            let event = try decoding("event \(sequence)") { try EventCoding.decode(sequence: sequence, &reader) }
            if record.filter.matches(event.kind, set: event.set) { events.append(event) }
            return events.count < limit
        }
        return events
    }

    private func info(_ name: String, _ record: SubscriberRecord) throws -> SubscriberInfo {
        var lag = 0
        var oldest: UInt64?
        if record.acknowledgedThrough < .max {
            try forEachEvent(in: (record.acknowledgedThrough + 1)...UInt64.max) { sequence, reader in
                let event = try decoding("event \(sequence)") { try EventCoding.decode(sequence: sequence, &reader) }
                if record.filter.matches(event.kind, set: event.set) {
                    lag += 1
                    if oldest == nil { oldest = event.timestamp }
                }
                return true
            }
        }
        return SubscriberInfo(
            name: name, filter: record.filter, acknowledgedThrough: record.acknowledgedThrough,
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
    /// - Throws: ``IOASIDError/Code/invalidArgument`` (a name of 0 or more than 128 bytes),
    ///   ``IOASIDError/Code/duplicateSubscriber``, ``IOASIDError/Code/noSuchSet``.
    public func subscribe(_ name: String, filter: EventFilter = .all) throws {
        try operation {
            guard !name.isEmpty, name.utf8.count <= 128 else {
                throw IOASIDError(.invalidArgument, "a subscriber name must be 1 to 128 bytes long")
            }
            if try txn.contains(Array(name.utf8), in: schema.subscribers) {
                throw IOASIDError(.duplicateSubscriber, "a subscriber named \"\(name)\" exists")
            }
            for set in filter.sets ?? [] { _ = try setRecord(set) }
            let record = SubscriberRecord(acknowledgedThrough: try lastSequence(), filter: filter)
            try txn.put(record.encoded(), forKey: Array(name.utf8), in: schema.subscribers)
            context.state.subscribers = nil
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
            let freed = try freedIDs(in: range, filter: record.filter)
            record.acknowledgedThrough = sequence
            try txn.put(record.encoded(), forKey: Array(name.utf8), in: schema.subscribers)
            context.state.subscribers = nil
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
            try txn.delete(Array(name.utf8), in: schema.subscribers)
            context.state.subscribers = nil
            let last = try lastSequence()
            guard record.acknowledgedThrough < last else { return }
            let range = (record.acknowledgedThrough + 1)...last
            let freed = try freedIDs(in: range, filter: record.filter)
            try pruneEvents(in: range)
            for id in freed { try reclaimIfReleased(id) }
        }
    }

    /// The IDs of the FREE events in `range` that `filter` takes.
    private func freedIDs(in range: ClosedRange<UInt64>, filter: EventFilter) throws -> [IOASID] {
        var ids: [IOASID] = []
        try forEachEvent(in: range) { sequence, reader in
            let event = try decoding("event \(sequence)") { try EventCoding.decode(sequence: sequence, &reader) }
            if event.kind == .free, filter.matches(.free, set: event.set), let id = event.id { ids.append(id) }
            return true
        }
        return ids
    }
}
