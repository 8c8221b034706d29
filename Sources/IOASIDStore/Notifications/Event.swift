import IOASIDMigrations

/// One state change, as recorded in the store's write-ahead outbox.
///
/// Every event commits in the same transaction as the change it describes,
/// and carries a sequence number that only grows, so a consumer can drop
/// duplicates after an at-least-once redelivery. `(store, epoch, sequence)`
/// never repeats: a store restored from a backup starts a new epoch.
public struct Event: Sendable, Codable, Equatable, Hashable {
    /// What changed.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// An ID was allocated to a set.
        case alloc = "ALLOC"
        /// An ID was freed by its owner; it is free-pending until every holder and
        /// interested gating subscriber lets go.
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
        /// A subscriber fell behind its lag limit and lapsed (store-wide; ``Event/subscriber`` names it).
        case subscriberLapsed = "SUBSCRIBER_LAPSED"
        /// A set's lease expired or its owner process went away; its FREEs and SET_FREE follow.
        case setExpired = "SET_EXPIRED"
        /// The capacity changed (store-wide; ``Event/capacity`` is the new one).
        case capacity = "CAPACITY"

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
            case .subscriberLapsed: 9
            case .setExpired: 10
            case .capacity: 11
            }
        }

        init?(code: UInt8) {
            guard let kind = Self.allCases.first(where: { $0.code == code }) else { return nil }
            self = kind
        }
    }

    /// The ID of the store the event belongs to (hex).
    public let store: String
    /// The store's epoch when the event committed; a restored copy starts a new one.
    public let epoch: UInt32
    /// The event's position in the outbox: unique in its epoch, and greater than every earlier event's.
    public let sequence: UInt64
    /// What changed.
    public let kind: Kind
    /// When the change committed, in milliseconds since 1970.
    public let timestamp: UInt64
    /// The set concerned; `nil` for a store-wide event (CAPACITY, SUBSCRIBER_LAPSED).
    public let set: SetID?
    /// The set's owner token (empty for a store-wide event).
    public let token: String
    /// The ID concerned (ALLOC, FREE, RECLAIM, BIND, UNBIND).
    public let id: IOASID?
    /// The set's quota (SET_CREATE, SET_QUOTA).
    public let quota: UInt32?
    /// The guest ID (BIND, UNBIND).
    public let guest: UInt32?
    /// Whether the set was destroyed (SET_FREE).
    public let destroy: Bool?
    /// The new capacity (CAPACITY).
    public let capacity: UInt32?
    /// The subscriber concerned (SUBSCRIBER_LAPSED).
    public let subscriber: String?

    /// Creates an event (the store creates its own; tests and tools use this).
    package init(
        store: String = "", epoch: UInt32 = 1, sequence: UInt64, kind: Kind, timestamp: UInt64, set: SetID?, token: String,
        id: IOASID? = nil, quota: UInt32? = nil, guest: UInt32? = nil, destroy: Bool? = nil,
        capacity: UInt32? = nil, subscriber: String? = nil
    ) {
        self.store = store
        self.epoch = epoch
        self.sequence = sequence
        self.kind = kind
        self.timestamp = timestamp
        self.set = set
        self.token = token
        self.id = id
        self.quota = quota
        self.guest = guest
        self.destroy = destroy
        self.capacity = capacity
        self.subscriber = subscriber
    }
}

/// Which events a subscriber receives.
public struct EventFilter: Sendable, Codable, Equatable {
    /// Only events of these sets; `nil` means every set, and store-wide events too.
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

    /// Whether an event of `kind` about `set` (`nil`: store-wide) passes the filter.
    public func matches(_ kind: Event.Kind, set: SetID?) -> Bool {
        let setMatches = set.map { set in sets?.contains(set) ?? true } ?? (sets == nil)
        return setMatches && (kinds?.contains(kind) ?? true)
    }
}

/// How a subscriber takes part in reclaiming freed IDs.
public enum SubscriberKind: String, Sendable, Codable {
    /// Holds back each freed ID its filter takes until it acknowledges the ID's FREE (the default).
    case gating
    /// Receives events and keeps a cursor, but never holds an ID back.
    case observer
}

/// Whether a subscriber is receiving events.
public enum SubscriberState: String, Sendable, Codable {
    /// Receiving events (and, if gating, holding freed IDs back).
    case active
    /// Fell behind its lag limit: receives nothing and holds nothing back until it resynchronises.
    case lapsed
}

/// How a subscriber is set up: its filter, its kind, its lag limits and the
/// subscribers it runs after.
public struct SubscriptionOptions: Sendable, Equatable {
    /// Which events it receives.
    public var filter: EventFilter
    /// Whether it holds freed IDs back.
    public var kind: SubscriberKind
    /// Lapse when more than this many events that its filter takes are unacknowledged (judged at each commit).
    public var maxLag: UInt64?
    /// Lapse when the oldest unacknowledged event it takes is older than this (judged at each commit).
    public var maxAge: Duration?
    /// See an event only once every one of these subscribers has acknowledged it.
    public var after: [String]

    /// Options; the defaults make a gating subscriber of every event, without limits.
    public init(filter: EventFilter = .all, kind: SubscriberKind = .gating, maxLag: UInt64? = nil, maxAge: Duration? = nil, after: [String] = []) {
        self.filter = filter
        self.kind = kind
        self.maxLag = maxLag
        self.maxAge = maxAge
        self.after = after
    }
}

/// A durable subscriber as seen by callers.
public struct SubscriberInfo: Sendable, Codable, Equatable {
    /// The subscriber's unique name.
    public let name: String
    /// Which events it receives.
    public let filter: EventFilter
    /// Whether it holds freed IDs back.
    public let kind: SubscriberKind
    /// Whether it is receiving events.
    public let state: SubscriberState
    /// Every event up to this sequence number has been acknowledged.
    public let acknowledgedThrough: UInt64
    /// Events it has not acknowledged yet.
    public let lag: Int
    /// When the oldest unacknowledged event committed (milliseconds since 1970), if any.
    public let oldestUnacknowledged: UInt64?
    /// Its lag limit in events, if any.
    public let maxLag: UInt64?
    /// Its age limit in milliseconds, if any.
    public let maxAgeMillis: UInt64?
    /// The subscribers it runs after.
    public let after: [String]
}

extension Event {
    /// The event stored under `sequence` in the store with ID `store`.
    init(store: String, sequence: UInt64, record: EventRecord) throws {
        guard let kind = Kind(code: record.kind) else { throw DecodingFailure() }
        self.init(
            store: store, epoch: record.epoch, sequence: sequence, kind: kind, timestamp: record.timestamp,
            set: record.set.map(SetID.init), token: record.token,
            id: record.id.map(IOASID.init), quota: record.quota, guest: record.guest, destroy: record.destroy,
            capacity: record.capacity, subscriber: record.subscriber
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
