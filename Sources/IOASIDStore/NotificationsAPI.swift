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
