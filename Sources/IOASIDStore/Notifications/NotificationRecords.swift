import LMDB

/// An outbox record (database `events`, key = sequence number).
///
/// Layout (version 1): `u8 version, u8 kind, u64 timestamp, u32 set, u8 fields,
/// [u32 id], [u32 quota], [u32 guest], [u8 destroy], u32 token length, token`,
/// where `fields` says which optional values follow.
enum EventCoding {
    private static let hasID: UInt8 = 1 << 0
    private static let hasQuota: UInt8 = 1 << 1
    private static let hasGuest: UInt8 = 1 << 2
    private static let hasDestroy: UInt8 = 1 << 3

    static func encode(_ e: Event) -> [UInt8] {
        var w = ByteWriter(capacity: 32 + e.token.utf8.count)
        w.u8(1)
        w.u8(e.kind.code)
        w.u64(e.timestamp)
        w.u32(e.set.rawValue)
        var fields: UInt8 = 0
        if e.id != nil { fields |= hasID }
        if e.quota != nil { fields |= hasQuota }
        if e.guest != nil { fields |= hasGuest }
        if e.destroy != nil { fields |= hasDestroy }
        w.u8(fields)
        if let id = e.id { w.u32(id.rawValue) }
        if let quota = e.quota { w.u32(quota) }
        if let guest = e.guest { w.u32(guest) }
        if let destroy = e.destroy { w.u8(destroy ? 1 : 0) }
        w.string(e.token)
        return w.bytes
    }

    static func decode(sequence: UInt64, _ r: inout ValueReader) throws -> Event {
        guard try r.u8() == 1, let kind = Event.Kind(code: try r.u8()) else { throw DecodingFailure() }
        let timestamp = try r.u64()
        let set = SetID(try r.u32())
        let fields = try r.u8()
        let id = fields & hasID != 0 ? IOASID(try r.u32()) : nil
        let quota = fields & hasQuota != 0 ? try r.u32() : nil
        let guest = fields & hasGuest != 0 ? try r.u32() : nil
        let destroy = fields & hasDestroy != 0 ? try r.u8() == 1 : nil
        guard let token = String(validating: try r.bytes(Int(try r.u32())), as: UTF8.self) else { throw DecodingFailure() }
        return Event(
            sequence: sequence, kind: kind, timestamp: timestamp, set: set, token: token,
            id: id, quota: quota, guest: guest, destroy: destroy
        )
    }

    /// Reads just the kind and set, to test a filter without decoding the rest.
    static func kindAndSet(_ r: inout ValueReader) throws -> (Event.Kind, SetID) {
        guard try r.u8() == 1, let kind = Event.Kind(code: try r.u8()) else { throw DecodingFailure() }
        _ = try r.u64()
        return (kind, SetID(try r.u32()))
    }
}

/// A durable subscriber (database `subscribers`, key = name).
///
/// Layout (version 1): `u8 version, u64 acknowledged-through, u8 hasSets,
/// [u32 count, count × u32 set], u8 hasKinds, [u16 kind bitmask]`.
struct SubscriberRecord: Equatable {
    var acknowledgedThrough: UInt64
    var filter: EventFilter

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u8(1)
        w.u64(acknowledgedThrough)
        if let sets = filter.sets {
            w.u8(1)
            w.u32(UInt32(sets.count))
            for set in sets.sorted() { w.u32(set.rawValue) }
        } else {
            w.u8(0)
        }
        if let kinds = filter.kinds {
            w.u8(1)
            w.u16(kinds.reduce(0) { $0 | 1 << UInt16($1.code) })
        } else {
            w.u8(0)
        }
        return w.bytes
    }

    init(acknowledgedThrough: UInt64, filter: EventFilter) {
        self.acknowledgedThrough = acknowledgedThrough
        self.filter = filter
    }

    init(decoding r: inout ValueReader) throws {
        guard try r.u8() == 1 else { throw DecodingFailure() }
        acknowledgedThrough = try r.u64()
        var filter = EventFilter()
        if try r.u8() == 1 {
            let count = Int(try r.u32())
            guard count <= r.remaining / 4 else { throw DecodingFailure() }
            var sets = Set<SetID>()
            for _ in 0..<count { sets.insert(SetID(try r.u32())) }
            filter.sets = sets
        }
        if try r.u8() == 1 {
            let mask = try r.u16()
            filter.kinds = Set(Event.Kind.allCases.filter { mask & (1 << UInt16($0.code)) != 0 })
        }
        self.filter = filter
    }
}

extension MetaKey {
    /// The next sequence number to hand out, kept for when the outbox is empty.
    static let nextSequence = Array("next-sequence".utf8)
}
