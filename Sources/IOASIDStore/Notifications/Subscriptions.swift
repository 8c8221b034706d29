import IOASIDMigrations
import LMDB

/// Durable, named subscribers: at-least-once, in-order delivery with
/// cumulative acknowledgement.
///
/// - A *gating* subscriber (the default) holds back every freed ID whose FREE
///   its filter takes until it acknowledges it; an *observer* never does.
/// - A subscriber may run *after* others: it sees an event only once each of
///   them has acknowledged it (quiesce the device before the IOMMU tears the
///   PASID down). Chains and fan-in are allowed; a cycle cannot be made.
/// - With lag limits, a subscriber that falls too far behind *lapses*: it stops
///   holding IDs back, its unacknowledged events are released for pruning, a
///   SUBSCRIBER_LAPSED event is committed, and it gets `subscriberLapsed` until
///   it resynchronises from a snapshot (``WriteTransaction/resync(_:)``).
extension IOASIDReading where Self: ~Copyable {
    /// Every subscriber, with its lag and the age of its oldest unacknowledged event.
    public func subscribers() throws -> [SubscriberInfo] {
        try subscriberRecords().map { try info($0.name, $0.record) }
    }

    /// One subscriber.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSubscriber``.
    public func subscriber(_ name: String) throws -> SubscriberInfo {
        try info(name, try subscriberRecord(name))
    }

    /// The events the subscriber has not acknowledged and may see now, in
    /// order, starting after `after` (default: its acknowledged-through
    /// sequence), at most `limit`. A subscriber that runs after others sees
    /// only what all of them have acknowledged.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSubscriber``, ``IOASIDError/Code-swift.struct/subscriberLapsed``,
    ///   ``IOASIDError/Code-swift.struct/storeRestored`` (`after` lies beyond the last event
    ///   of a store restored since: the caller saw events this copy never had).
    public func pendingEvents(for name: String, after: UInt64? = nil, limit: Int = .max) throws -> [Event] {
        let record = try activeSubscriberRecord(name)
        if let after, after > record.acknowledgedThrough, after > (try lastSequence()), try epoch() > 1 {
            throw IOASIDError(
                .storeRestored,
                "cannot read after \(after): the store was restored (epoch \(try epoch())) and its last event is \(try lastSequence()); resynchronise"
            )
        }
        let start = max(after ?? 0, record.acknowledgedThrough)
        let ceiling = try visibleThrough(record)
        guard start < ceiling, limit > 0 else { return [] }
        var events: [Event] = []
        try forEachDecodedEvent(in: (start + 1)...ceiling) { event in
            if record.takes(kind: event.kind.code, set: event.set?.rawValue) { events.append(event) }
            return events.count < limit
        }
        return events
    }

    /// The last sequence a subscriber may see and acknowledge: just before the
    /// first event it takes that a subscriber it runs after has not finished
    /// with (the last event when there is none).
    ///
    /// A predecessor has finished with an event when it acknowledged it, or
    /// when it does not take it and every subscriber it runs after has
    /// finished with it (so a chain orders events its middle link filters
    /// out); a lapsed or removed predecessor holds nothing back.
    func visibleThrough(_ record: SubscriberRecord) throws -> UInt64 {
        let last = try lastSequence()
        guard !record.after.isEmpty, record.acknowledgedThrough < last else { return last }
        let all = Dictionary(try subscriberRecords().map { ($0.name, $0.record) }, uniquingKeysWith: { first, _ in first })
        func finished(_ name: String, _ sequence: UInt64, _ kind: UInt8, _ set: UInt32?, depth: Int) -> Bool {
            guard let predecessor = all[name], !predecessor.isLapsed, depth < all.count else { return true }
            if predecessor.acknowledgedThrough >= sequence { return true }
            if predecessor.takes(kind: kind, set: set) { return false }
            return predecessor.after.allSatisfy { finished($0, sequence, kind, set, depth: depth + 1) }
        }
        var ceiling = last
        try forEachEvent(in: (record.acknowledgedThrough + 1)...last) { sequence, reader in
            let (kind, set) = try EventRecord.kindAndSet(decoding: &reader)
            guard record.takes(kind: kind, set: set) else { return true }
            if record.after.allSatisfy({ finished($0, sequence, kind, set, depth: 0) }) { return true }
            ceiling = sequence - 1
            return false
        }
        return ceiling
    }

    /// The record of a subscriber that has not lapsed.
    func activeSubscriberRecord(_ name: String) throws -> SubscriberRecord {
        let record = try subscriberRecord(name)
        guard !record.isLapsed else {
            throw IOASIDError(.subscriberLapsed, "subscriber \"\(Names.escaped(name))\" fell behind its lag limit and lapsed")
        }
        return record
    }

    private func info(_ name: String, _ record: SubscriberRecord) throws -> SubscriberInfo {
        let last = try lastSequence()
        var oldest: UInt64?
        var lag = 0
        if !record.isLapsed, record.acknowledgedThrough < last {
            try forEachEvent(in: (record.acknowledgedThrough + 1)...last) { _, reader in
                let event = try EventRecord(decoding: &reader)
                guard record.takes(kind: event.kind, set: event.set) else { return true }
                if oldest == nil { oldest = event.timestamp }
                lag += 1
                return true
            }
        }
        return SubscriberInfo(
            name: name, filter: EventFilter(record), kind: record.isObserver ? .observer : .gating,
            state: record.isLapsed ? .lapsed : .active, acknowledgedThrough: record.acknowledgedThrough,
            lag: lag, oldestUnacknowledged: oldest,
            maxLag: record.maxLag == 0 ? nil : record.maxLag, maxAgeMillis: record.maxAgeMillis == 0 ? nil : record.maxAgeMillis,
            after: record.after
        )
    }
}

/// What a lapsed subscriber resumes from: the store's state and the sequence
/// to continue after, read in one transaction.
public struct ResyncSnapshot: Sendable, Codable, Equatable {
    /// The store's ID and epoch.
    public let store: String
    /// The epoch of `sequence`.
    public let epoch: UInt32
    /// Events after this sequence are new to the subscriber.
    public let sequence: UInt64
    /// Every set its filter takes.
    public let sets: [SetInfo]
    /// Every ID (with guest ID and data) of those sets.
    public let ids: [IDInfo]
}

extension WriteTransaction {
    /// Creates a durable gating subscriber of `filter`. See ``subscribe(_:options:)``.
    public func subscribe(_ name: String, filter: EventFilter = .all) throws {
        try subscribe(name, options: SubscriptionOptions(filter: filter))
    }

    /// Creates a durable subscriber that receives, from now on, every event
    /// its filter takes. It sees only events committed after it subscribed.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/invalidArgument`` (a name that is not a name,
    ///   see ``Names``; a zero limit; running after itself),
    ///   ``IOASIDError/Code-swift.struct/duplicateSubscriber``, ``IOASIDError/Code-swift.struct/noSuchSet``,
    ///   ``IOASIDError/Code-swift.struct/noSuchSubscriber`` (an `after` name).
    public func subscribe(_ name: String, options: SubscriptionOptions) throws {
        try operation {
            try Names.check(name, as: "subscriber name")
            if try txn.contains(StoreLayout.subscriberKey(name), in: schema.subscribers) {
                throw IOASIDError(.duplicateSubscriber, "a subscriber named \"\(Names.escaped(name))\" exists")
            }
            for set in options.filter.sets ?? [] { _ = try setRecord(set) }
            if options.maxLag == 0 { throw IOASIDError(.invalidArgument, "a lag limit must be at least 1 event") }
            let maxAge = options.maxAge.map { UInt64(clamping: $0.components.seconds) * 1000 + UInt64($0.components.attoseconds / 1_000_000_000_000_000) }
            if maxAge == 0 { throw IOASIDError(.invalidArgument, "an age limit must be at least 1 ms") }
            var after: [String] = []
            for predecessor in options.after where !after.contains(predecessor) {
                // The subscriber is new, so nothing can run after it yet: no cycle can form.
                guard predecessor != name else { throw IOASIDError(.invalidArgument, "a subscriber cannot run after itself") }
                _ = try subscriberRecord(predecessor)
                after.append(predecessor)
            }
            var record = SubscriberRecord(acknowledgedThrough: try lastSequence(), sets: options.filter.storedSets, kindMask: options.filter.storedKindMask)
            record.isObserver = options.kind == .observer
            record.maxLag = options.maxLag ?? 0
            record.maxAgeMillis = maxAge ?? 0
            record.after = after
            record.countedThrough = record.acknowledgedThrough
            try putSubscriber(record, name)
        }
    }

    /// Acknowledges every event up to and including `sequence` (cumulative).
    ///
    /// Events no subscriber still needs are deleted; IDs whose FREE this
    /// acknowledges are reclaimed when nothing else holds them back. An
    /// acknowledgement at or below the current one changes nothing.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSubscriber``, ``IOASIDError/Code-swift.struct/subscriberLapsed``,
    ///   ``IOASIDError/Code-swift.struct/invalidArgument`` (beyond what it may see: a sequence
    ///   not handed out yet, or not yet acknowledged by a subscriber it runs after),
    ///   ``IOASIDError/Code-swift.struct/storeRestored`` (a sequence beyond the outbox of a
    ///   store that was restored since).
    public func acknowledge(_ name: String, through sequence: UInt64) throws {
        try operation {
            var record = try activeSubscriberRecord(name)
            let last = try lastSequence()
            guard sequence <= last else {
                if try epoch() > 1 {
                    throw IOASIDError(
                        .storeRestored,
                        "cannot acknowledge \(sequence): the store was restored (epoch \(try epoch())) and its last event is \(last); resynchronise"
                    )
                }
                throw IOASIDError(.invalidArgument, "cannot acknowledge \(sequence): the last event is \(last)")
            }
            let ceiling = try visibleThrough(record)
            guard sequence <= ceiling else {
                throw IOASIDError(
                    .invalidArgument,
                    "cannot acknowledge \(sequence): \"\(Names.escaped(name))\" runs after \(record.after.map { "\"\(Names.escaped($0))\"" }.joined(separator: ", ")), acknowledged only through \(ceiling)"
                )
            }
            guard sequence > record.acknowledgedThrough else { return }
            let range = (record.acknowledgedThrough + 1)...sequence
            let freed = try freedIDs(in: range, taken: record)
            if record.maxLag > 0 {
                if record.countedThrough > record.acknowledgedThrough {
                    let counted = try countTaken(by: record, in: (record.acknowledgedThrough + 1)...min(sequence, record.countedThrough))
                    record.pendingCount -= min(record.pendingCount, counted)
                }
                record.countedThrough = max(record.countedThrough, sequence)
            }
            record.acknowledgedThrough = sequence
            try putSubscriber(record, name)
            try pruneEvents(in: range)
            for id in freed { try reclaimIfReleased(id) }
        }
    }

    /// Acknowledges events cumulatively, naming the epoch of the last event
    /// handled (``Event/epoch``): refused with ``IOASIDError/Code-swift.struct/storeRestored``
    /// when the store was restored since and no longer has that event — even
    /// when it has committed as many new events since (which
    /// ``acknowledge(_:through:)`` cannot tell apart).
    ///
    /// - Throws: as ``acknowledge(_:through:)``, and ``IOASIDError/Code-swift.struct/storeRestored``.
    public func acknowledge(_ name: String, through sequence: UInt64, epoch: UInt32) throws {
        try operation {
            try checkPosition(sequence, epoch: epoch)
            try acknowledge(name, through: sequence)
        }
    }

    /// Removes a subscriber, releasing every ID it was holding back.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSubscriber``, ``IOASIDError/Code-swift.struct/subscriberHasFollowers``.
    public func unsubscribe(_ name: String) throws {
        try operation {
            let record = try subscriberRecord(name)
            if let follower = try subscriberRecords().first(where: { $0.record.after.contains(name) }) {
                throw IOASIDError(
                    .subscriberHasFollowers,
                    "\"\(Names.escaped(follower.name))\" runs after \"\(Names.escaped(name))\"; unsubscribe it first"
                )
            }
            try remove(StoreLayout.subscriberKey(name), in: schema.subscribers)
            context.state.subscribers = nil
            try release(record)
        }
    }

    /// Brings a lapsed (or any) subscriber back: it continues after the last
    /// event, and gets the state to start from — every set and ID its filter
    /// takes — read in this same transaction.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSubscriber``.
    public func resync(_ name: String) throws -> ResyncSnapshot {
        try operation {
            var record = try subscriberRecord(name)
            let previous = record
            record.isLapsed = false
            record.acknowledgedThrough = try lastSequence()
            record.pendingCount = 0
            record.countedThrough = record.acknowledgedThrough
            try putSubscriber(record, name)
            try release(previous)
            let filter = EventFilter(record)
            let sets = try sets().filter { filter.sets?.contains($0.id) ?? true }
            let wanted = Set(sets.map(\.id.rawValue))
            var ids: [IDInfo] = []
            try forEachRecord(where: { wanted.contains($0) }) { id, entry in ids.append(IDInfo(id: id.rawValue, record: entry)) }
            return ResyncSnapshot(store: try storeID(), epoch: try epoch(), sequence: record.acknowledgedThrough, sets: sets, ids: ids)
        }
    }

    /// Releases what a subscriber's unacknowledged events held: prunes the
    /// events nobody else wants and reclaims the IDs nothing else holds back.
    /// The subscriber's record must already say it no longer takes them.
    private func release(_ previous: SubscriberRecord) throws {
        let last = try lastSequence()
        guard previous.acknowledgedThrough < last, !previous.isLapsed else { return }
        let range = (previous.acknowledgedThrough + 1)...last
        let freed = try freedIDs(in: range, taken: previous)
        try pruneEvents(in: range)
        for id in freed { try reclaimIfReleased(id) }
    }

    /// Lapses every active subscriber past one of its lag limits. Runs once
    /// per write transaction, before it commits.
    ///
    /// The lag limit counts the events the subscriber takes, kept up to date
    /// incrementally (each commit counts only its new events), so events of
    /// sets or kinds it does not take never make it lapse.
    func checkLapses() throws {
        guard !context.state.lapsesChecked else { return }
        context.state.lapsesChecked = true
        let limited = try subscriberRecords().filter { !$0.record.isLapsed && ($0.record.maxLag > 0 || $0.record.maxAgeMillis > 0) }
        guard !limited.isEmpty else { return }
        let last = try lastSequence()
        let now = IOASIDStore.nowMillis()
        for (name, original) in limited {
            var record = original
            var over = false
            if record.maxLag > 0 {
                let from = max(record.countedThrough, record.acknowledgedThrough)
                if from < last {
                    record.pendingCount += try countTaken(by: record, in: (from + 1)...last)
                    record.countedThrough = last
                }
                over = record.pendingCount > record.maxLag
            }
            if !over, record.maxAgeMillis > 0, record.acknowledgedThrough < last {
                try forEachEvent(in: (record.acknowledgedThrough + 1)...last) { _, reader in
                    let event = try EventRecord(decoding: &reader)
                    guard record.takes(kind: event.kind, set: event.set) else { return true }
                    over = now > event.timestamp && now - event.timestamp > record.maxAgeMillis
                    return false
                }
            }
            if over {
                try lapse(name, original)
            } else if record != original {
                try putSubscriber(record, name)
            }
        }
    }

    /// How many events in `range` the subscriber takes.
    private func countTaken(by record: SubscriberRecord, in range: ClosedRange<UInt64>) throws -> UInt64 {
        var count: UInt64 = 0
        try forEachEvent(in: range) { _, reader in
            let event = try EventRecord(decoding: &reader)
            if record.takes(kind: event.kind, set: event.set) { count += 1 }
            return true
        }
        return count
    }

    /// Lapses one subscriber: it stops taking events and holding IDs back.
    private func lapse(_ name: String, _ record: SubscriberRecord) throws {
        var lapsed = record
        lapsed.isLapsed = true
        try putSubscriber(lapsed, name)
        try emit(.subscriberLapsed, set: nil, token: "", subscriber: name)
        try release(record)
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
            if event.kind == .free, subscriber.takes(kind: event.kind.code, set: event.set?.rawValue), let id = event.id { ids.append(id) }
            return true
        }
        return ids
    }
}
