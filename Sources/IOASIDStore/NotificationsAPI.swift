import IOASIDMigrations

/// One-call operations on subscribers, the outbox and holds.
extension IOASIDStore {
    /// Creates a durable subscriber. See ``WriteTransaction/subscribe(_:filter:)``.
    public func subscribe(_ name: String, filter: EventFilter = .all) throws(IOASIDError) {
        try writeMapped { try $0.subscribe(name, filter: filter) }
    }
    /// Removes a subscriber. See ``WriteTransaction/unsubscribe(_:)``.
    public func unsubscribe(_ name: String) throws(IOASIDError) {
        try writeMapped { try $0.unsubscribe(name) }
    }
    /// Acknowledges events cumulatively. See ``WriteTransaction/acknowledge(_:through:)``.
    public func acknowledge(_ name: String, through sequence: UInt64) throws(IOASIDError) {
        try writeMapped { try $0.acknowledge(name, through: sequence) }
    }
    /// Acknowledges events cumulatively, checking the epoch. See ``WriteTransaction/acknowledge(_:through:epoch:)``.
    public func acknowledge(_ name: String, through sequence: UInt64, epoch: UInt32) throws(IOASIDError) {
        try writeMapped { try $0.acknowledge(name, through: sequence, epoch: epoch) }
    }
    /// Acknowledges events cumulatively in the next group commit.
    public func acknowledge(_ name: String, through sequence: UInt64) async throws(IOASIDError) {
        try await submit { try $0.acknowledge(name, through: sequence) }
    }
    /// Every subscriber with its lag.
    public func subscribers() throws(IOASIDError) -> [SubscriberInfo] { try readMapped { try $0.subscribers() } }
    /// One subscriber.
    public func subscriber(_ name: String) throws(IOASIDError) -> SubscriberInfo {
        try readMapped { try $0.subscriber(name) }
    }
    /// Unacknowledged events of a subscriber. See ``IOASIDReading/pendingEvents(for:after:limit:)``.
    public func pendingEvents(for name: String, after: UInt64? = nil, limit: Int = .max) throws(IOASIDError) -> [Event] {
        try readMapped { try $0.pendingEvents(for: name, after: after, limit: limit) }
    }
    /// The subscriber's events as an `AsyncSequence`; see ``EventStream``.
    public func events(for name: String, pollInterval: Duration = .milliseconds(100)) -> EventStream {
        EventStream(store: self, name: name, pollInterval: pollInterval)
    }
    /// Takes a durable hold on an ID. See ``WriteTransaction/retain(_:in:holder:)``.
    @discardableResult
    public func retain(_ id: IOASID, in set: SetID, holder: String) throws(IOASIDError) -> Bool {
        try writeMapped { try $0.retain(id, in: set, holder: holder) }
    }
    /// Releases a hold. See ``WriteTransaction/release(_:in:holder:)``.
    public func release(_ id: IOASID, in set: SetID, holder: String) throws(IOASIDError) {
        try writeMapped { try $0.release(id, in: set, holder: holder) }
    }
    /// The holders of an ID.
    public func holders(of id: IOASID) throws(IOASIDError) -> [String] { try readMapped { try $0.holders(of: id) } }
}

/// One-call operations on consumers and owners.
extension IOASIDStore {
    /// Creates a subscriber with options (kind, lag limits, order). See ``WriteTransaction/subscribe(_:options:)``.
    public func subscribe(_ name: String, options: SubscriptionOptions) throws(IOASIDError) {
        try writeMapped { try $0.subscribe(name, options: options) }
    }
    /// Resynchronises a subscriber from a snapshot. See ``WriteTransaction/resync(_:)``.
    public func resync(_ name: String) throws(IOASIDError) -> ResyncSnapshot {
        try writeMapped { try $0.resync(name) }
    }
    /// Creates a set with an owner. See ``WriteTransaction/createSet(token:quota:owner:)``.
    public func createSet(token: String, quota: UInt32, owner: SetOwner) throws(IOASIDError) -> SetID {
        try writeMapped { try $0.createSet(token: token, quota: quota, owner: owner) }
    }
    /// Renews a set's lease. See ``WriteTransaction/renew(_:)``.
    public func renew(_ set: SetID) throws(IOASIDError) {
        try writeMapped { try $0.renew(set) }
    }
    /// Renews a set's lease in the next group commit.
    public func renew(_ set: SetID) async throws(IOASIDError) {
        try await submit { try $0.renew(set) }
    }
    /// Frees and destroys the sets whose owners went away. See ``WriteTransaction/reap(now:)``.
    @discardableResult
    public func reap() throws(IOASIDError) -> [ReapedSet] {
        try writeMapped { try $0.reap() }
    }

    /// Waits until `id` is back in the pool: reclaimed (or already handed out
    /// again) rather than allocated-or-free-pending as now. Wakes on commits
    /// made through this instance, and polls every `pollInterval` for those of
    /// other processes.
    ///
    /// - Returns: `true` when it was reclaimed, `false` when `timeout` passed first.
    public func reclaimed(
        _ id: IOASID, timeout: Duration? = nil, pollInterval: Duration = .milliseconds(50)
    ) async throws(IOASIDError) -> Bool {
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now + $0 }
        guard let first = try readMapped({ try $0.idRecord(id) }), first.isFreePending else { return true }
        while true {
            let generation = changeSignal.generation
            guard let record = try readMapped({ try $0.idRecord(id) }), record.isFreePending, record.set == first.set else { return true }
            let wait: Duration
            if let deadline {
                let left = deadline - clock.now
                if left <= .zero { return false }
                wait = min(left, pollInterval)
            } else {
                wait = pollInterval
            }
            await changeSignal.wait(after: generation, timeout: wait)
            if Task.isCancelled { return false }
        }
    }
}
