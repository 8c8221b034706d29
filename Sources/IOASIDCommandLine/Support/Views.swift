import Foundation
import IOASIDMigrations
import IOASIDStore
import Logging

// The JSON objects of docs/cli-json.md. One spelling per field: `id` is an
// IOASID, `set` a set ID, `guest` a guest ID, `token` an owner token, `name` a
// subscriber, `holder` a holder; states are `allocated`, `freePending`, `free`;
// times are RFC 3339 UTC strings; optional fields are omitted when absent or
// empty (Swift's JSONEncoder omits nil optionals).

/// The state an ID is in after a command, as printed (JSON) and said (text).
enum IDStateName {
    static func json(_ state: IDState?) -> String {
        switch state {
        case .allocated?: "allocated"
        case .freePending?: "freePending"
        case nil: "free"
        }
    }

    static func text(_ state: IDState?) -> String {
        switch state {
        case .allocated?: "allocated"
        case .freePending?: "free-pending"
        case nil: "free"
        }
    }
}

/// An ID's record.
struct IDView: Encodable {
    let id: UInt32
    let set: UInt32
    let state: String
    let guest: UInt32?
    let data: String?
    let holders: [String]?
    /// For a free-pending ID: the gating subscribers that have not acknowledged its FREE.
    let waitingFor: [String]?

    init(_ info: IDInfo, holders: [String] = []) {
        id = info.id.rawValue
        set = info.set.rawValue
        state = IDStateName.json(info.state)
        guest = info.guest
        data = info.data.isEmpty ? nil : Hex.encode(info.data)
        self.holders = holders.isEmpty ? nil : holders
        waitingFor = info.waitingFor.isEmpty ? nil : info.waitingFor
    }

    var text: String {
        var lines = ["id:      \(id)", "set:     \(set)", "state:   \(state == "freePending" ? "free-pending" : state)"]
        lines.append("guest:   \(guest.map(String.init) ?? "(none)")")
        lines.append("data:    \(data ?? "(none)")")
        lines.append("holders: \(holders.map { $0.map(Names.escaped).joined(separator: ", ") } ?? "(none)")")
        if state == "freePending" {
            lines.append("waiting: \(waitingFor.map { $0.map(Names.escaped).joined(separator: ", ") } ?? "(none)")")
            if holders == nil, waitingFor == nil { lines.append("(reclaimed at the next commit)") }
        }
        return lines.joined(separator: "\n")
    }
}

/// A set.
struct SetView: Encodable {
    let set: UInt32
    let token: String
    let quota: UInt32
    /// IDs in use (allocated, not free-pending).
    let allocated: UInt32
    /// IDs freed but held back; they count against the quota until reclaimed.
    let freePending: UInt32
    let system: Bool
    let frozen: Bool
    let destroyPending: Bool
    /// The lease, in milliseconds.
    let leaseMilliseconds: UInt64?
    /// When the lease was last renewed.
    let renewedAt: String?
    /// The owner process.
    let ownerPID: Int32?

    init(_ info: SetInfo) {
        set = info.id.rawValue
        token = info.token
        quota = info.quota
        allocated = info.allocated - min(info.allocated, info.freePending)
        freePending = info.freePending
        system = info.isSystem
        frozen = info.isFrozen
        destroyPending = info.isDestroyPending
        leaseMilliseconds = info.leaseMillis
        renewedAt = info.renewedAt.map { Timestamp.rfc3339(milliseconds: $0) }
        ownerPID = info.ownerProcess
    }

    var flags: [String] {
        [system ? "system" : nil, frozen ? "frozen" : nil, destroyPending ? "destroy-pending" : nil].compactMap { $0 }
    }

    var text: String {
        """
        set:          \(set)
        token:        \(Names.escaped(token))
        quota:        \(quota)
        allocated:    \(allocated)
        free-pending: \(freePending)
        quota used:   \(allocated + freePending) of \(quota)
        flags:        \(flags.isEmpty ? "(none)" : flags.joined(separator: ", "))
        """ + ownerText
    }

    /// The lease and owner process lines, when the set has them.
    var ownerText: String {
        var lines = ""
        if let leaseMilliseconds {
            lines += "\nlease:        \(Durations.text(milliseconds: leaseMilliseconds)), renewed \(renewedAt ?? "never")"
                + " (reaped when not renewed for \(Durations.text(milliseconds: 2 * leaseMilliseconds)))"
        }
        if let ownerPID { lines += "\nowner:        process \(ownerPID) (reaped once it is gone)" }
        return lines
    }
}

/// A durable subscriber.
struct SubscriberView: Encodable {
    let name: String
    /// `gating` (holds freed IDs back until it acknowledges) or `observer`.
    let kind: String
    /// `active` or `lapsed`.
    let state: String
    let sets: [UInt32]?
    let kinds: [String]?
    let acknowledgedThrough: UInt64
    let lag: Int
    /// When the oldest unacknowledged event committed.
    let oldestUnacknowledged: String?
    let maxLag: UInt64?
    let maxAgeMilliseconds: UInt64?
    let after: [String]?

    init(_ info: SubscriberInfo) {
        name = info.name
        kind = info.kind.rawValue
        state = info.state.rawValue
        sets = info.filter.sets.map { $0.map(\.rawValue).sorted() }
        kinds = info.filter.kinds.map { $0.map(\.rawValue).sorted() }
        acknowledgedThrough = info.acknowledgedThrough
        lag = info.lag
        oldestUnacknowledged = info.oldestUnacknowledged.map { Timestamp.rfc3339(milliseconds: $0) }
        oldestMilliseconds = info.oldestUnacknowledged
        maxLag = info.maxLag
        maxAgeMilliseconds = info.maxAgeMillis
        after = info.after.isEmpty ? nil : info.after
    }

    private let oldestMilliseconds: UInt64?
    private enum CodingKeys: String, CodingKey {
        case name, kind, state, sets, kinds, acknowledgedThrough, lag, oldestUnacknowledged, maxLag, maxAgeMilliseconds, after
    }

    var filterText: String {
        var parts = [sets.map { "sets " + $0.map(String.init).joined(separator: ",") }, kinds.map { "kinds " + $0.joined(separator: ",") }]
            .compactMap { $0 }
        if parts.isEmpty { parts.append("every event") }
        if let after { parts.append("after " + after.map(Names.escaped).joined(separator: ",")) }
        var limits: [String] = []
        if let maxLag { limits.append("\(grouped(Int(clamping: maxLag))) events") }
        if let maxAgeMilliseconds { limits.append(Durations.text(milliseconds: maxAgeMilliseconds)) }
        if !limits.isEmpty { parts.append("lapses past " + limits.joined(separator: " or ")) }
        return parts.joined(separator: "; ")
    }

    var ageText: String {
        guard let oldestMilliseconds else { return "-" }
        let now = Timestamp.nowMilliseconds
        return Self.age(now > oldestMilliseconds ? now - oldestMilliseconds : 0)
    }

    var text: String {
        if state == "lapsed" {
            return "\(Names.escaped(name)) (\(kind)): LAPSED, holds nothing back; resynchronise with `ioasid events resync \(Names.escaped(name))`, \(filterText)"
        }
        return "\(Names.escaped(name)) (\(kind)): acknowledged through \(acknowledgedThrough), \(plural(lag, "event")) pending"
            + (oldestMilliseconds == nil ? "" : " (oldest \(ageText) old)") + ", \(filterText)"
    }

    static func age(_ ms: UInt64) -> String {
        if ms < 1000 { return "\(ms) ms" }
        if ms < 120_000 { return "\(ms / 1000) s" }
        if ms < 7_200_000 { return "\(ms / 60_000) min" }
        return "\(ms / 3_600_000) h"
    }
}

/// An event, as printed by `events pending` and `events tail` (JSON Lines).
struct EventView: Encodable {
    let store: String
    let epoch: UInt32
    let sequence: UInt64
    let kind: String
    let time: String
    let set: UInt32?
    let token: String?
    let capacity: UInt32?
    let subscriber: String?
    let id: UInt32?
    let quota: UInt32?
    let guest: UInt32?
    let destroy: Bool?

    init(_ event: Event) {
        store = event.store
        epoch = event.epoch
        sequence = event.sequence
        kind = event.kind.rawValue
        time = Timestamp.rfc3339(milliseconds: event.timestamp)
        set = event.set?.rawValue
        token = event.token.isEmpty ? nil : event.token
        capacity = event.capacity
        subscriber = event.subscriber
        id = event.id?.rawValue
        quota = event.quota
        guest = event.guest
        destroy = event.destroy
    }
}

/// An export's header, as printed by `migrate export` and `migrate validate`.
struct ExportView: Encodable {
    let exportID: String
    let sourceStore: String
    let set: UInt32
    let token: String
    let quota: UInt32
    let count: Int
    let createdAt: String
    let sha256: String?

    init(_ header: ExportHeader, sha256: String? = nil) {
        exportID = header.exportID
        sourceStore = header.sourceStore
        set = header.set
        token = header.token
        quota = header.quota
        count = header.count
        createdAt = Timestamp.rfc3339(milliseconds: header.createdAt)
        self.sha256 = sha256
    }
}
