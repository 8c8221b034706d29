import IOASIDMigrations

/// One state change, as recorded in the store's write-ahead outbox.
///
/// Every event commits in the same transaction as the change it describes,
/// and carries a sequence number that only grows, so a consumer can drop
/// duplicates after an at-least-once redelivery.
public struct Event: Sendable, Codable, Equatable, Hashable {
    /// What changed.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// An ID was allocated to a set.
        case alloc = "ALLOC"
        /// An ID was freed by its owner; it is free-pending until every holder and
        /// interested subscriber lets go.
        case free = "FREE"
        /// A freed ID returned to the pool and may be handed out again.
        case reclaim = "RECLAIM"
        /// A set was created.
        case setCreate = "SET_CREATE"
        /// A set's quota changed.
        case setQuota = "SET_QUOTA"
        /// A set was freed (every ID freed; with `destroy`, the set removed).
        case setFree = "SET_FREE"
        /// A guest ID was attached to a host ID.
        case bind = "BIND"
        /// A guest ID was detached from a host ID.
        case unbind = "UNBIND"

        var code: UInt8 {
            switch self {
            case .alloc: 1
            case .free: 2
            case .reclaim: 3
            case .setCreate: 4
            case .setQuota: 5
            case .setFree: 6
            case .bind: 7
            case .unbind: 8
            }
        }

        init?(code: UInt8) {
            guard let kind = Self.allCases.first(where: { $0.code == code }) else { return nil }
            self = kind
        }
    }

    /// The event's position in the outbox: unique, and greater than every earlier event's.
    public let sequence: UInt64
    /// What changed.
    public let kind: Kind
    /// When the change committed, in milliseconds since 1970.
    public let timestamp: UInt64
    /// The set concerned.
    public let set: SetID
    /// The set's owner token.
    public let token: String
    /// The ID concerned (ALLOC, FREE, RECLAIM, BIND, UNBIND).
    public let id: IOASID?
    /// The set's quota (SET_CREATE, SET_QUOTA).
    public let quota: UInt32?
    /// The guest ID (BIND, UNBIND).
    public let guest: UInt32?
    /// Whether the set was destroyed (SET_FREE).
    public let destroy: Bool?

    /// Creates an event (the store creates its own; tests and tools use this).
    package init(
        sequence: UInt64, kind: Kind, timestamp: UInt64, set: SetID, token: String,
        id: IOASID? = nil, quota: UInt32? = nil, guest: UInt32? = nil, destroy: Bool? = nil
    ) {
        self.sequence = sequence
        self.kind = kind
        self.timestamp = timestamp
        self.set = set
        self.token = token
        self.id = id
        self.quota = quota
        self.guest = guest
        self.destroy = destroy
    }
}

/// Which events a subscriber receives.
public struct EventFilter: Sendable, Codable, Equatable {
    /// Only events of these sets; `nil` means every set.
    public var sets: Set<SetID>?
    /// Only events of these kinds; `nil` means every kind.
    public var kinds: Set<Event.Kind>?

    /// A filter; the defaults take every event.
    public init(sets: Set<SetID>? = nil, kinds: Set<Event.Kind>? = nil) {
        self.sets = sets
        self.kinds = kinds
    }

    /// Every event of every set.
    public static let all = EventFilter()

    /// Whether an event of `kind` about `set` passes the filter.
    public func matches(_ kind: Event.Kind, set: SetID) -> Bool {
        (sets?.contains(set) ?? true) && (kinds?.contains(kind) ?? true)
    }
}

/// A durable subscriber as seen by callers.
public struct SubscriberInfo: Sendable, Codable, Equatable {
    /// The subscriber's unique name.
    public let name: String
    /// Which events it receives.
    public let filter: EventFilter
    /// Every event up to this sequence number has been acknowledged.
    public let acknowledgedThrough: UInt64
    /// Events it has not acknowledged yet.
    public let lag: Int
    /// When the oldest unacknowledged event committed (milliseconds since 1970), if any.
    public let oldestUnacknowledged: UInt64?
}

extension Event {
    /// The event stored under `sequence`.
    init(sequence: UInt64, record: EventRecord) throws {
        guard let kind = Kind(code: record.kind) else { throw DecodingFailure() }
        self.init(
            sequence: sequence, kind: kind, timestamp: record.timestamp, set: SetID(record.set), token: record.token,
            id: record.id.map(IOASID.init), quota: record.quota, guest: record.guest, destroy: record.destroy
        )
    }
}

extension EventFilter {
    /// The filter a subscriber record keeps.
    init(_ record: SubscriberRecord) {
        self.init(
            sets: record.sets.map { Set($0.map(SetID.init)) },
            kinds: record.kindMask.map { mask in Set(Event.Kind.allCases.filter { mask & (1 << UInt16($0.code)) != 0 }) }
        )
    }

    /// The sets of the filter as stored.
    var storedSets: Set<UInt32>? { sets.map { Set($0.map(\.rawValue)) } }

    /// The kinds of the filter as a stored bitmask.
    var storedKindMask: UInt16? { kinds.map { $0.reduce(0) { $0 | 1 << UInt16($1.code) } } }
}
