import LMDB

/// What the store keeps per set (database `control`, key `0x01 ‖ set id`).
///
/// Layout (version 1): `u8 version, u8 flags, u32 quota, u32 count, u32 pending, u32 token length, token`.
struct SetRecord: Equatable {
    struct Flags: OptionSet, Equatable {
        let rawValue: UInt8
        static let system = Flags(rawValue: 1 << 0)
        static let frozen = Flags(rawValue: 1 << 1)
        static let destroyPending = Flags(rawValue: 1 << 2)
    }

    var token: String
    var quota: UInt32
    /// IDs that belong to the set: allocated plus free-pending. Counts against the quota.
    var count: UInt32
    /// Of ``count``, the IDs that are free-pending.
    var pending: UInt32
    var flags: Flags

    /// A set is live until it is destroyed (or waits to be).
    var isLive: Bool { !flags.contains(.destroyPending) }

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 18 + token.utf8.count)
        w.u8(1)
        w.u8(flags.rawValue)
        w.u32(quota)
        w.u32(count)
        w.u32(pending)
        w.string(token)
        return w.bytes
    }

    init(token: String, quota: UInt32, count: UInt32 = 0, pending: UInt32 = 0, flags: Flags = []) {
        self.token = token
        self.quota = quota
        self.count = count
        self.pending = pending
        self.flags = flags
    }

    init(decoding r: inout ValueReader) throws {
        guard try r.u8() == 1 else { throw DecodingFailure() }
        flags = Flags(rawValue: try r.u8())
        quota = try r.u32()
        count = try r.u32()
        pending = try r.u32()
        let raw = try r.bytes(Int(try r.u32()))
        guard let token = String(validating: raw, as: UTF8.self) else { throw DecodingFailure() }
        self.token = token
    }
}

/// The state of an ID that belongs to a set.
public enum IDState: String, Sendable, Codable {
    /// Allocated and in use.
    case allocated
    /// Freed by its owner, waiting for holders and subscribers to let go before it returns to the pool.
    case freePending
}

/// What the store keeps per allocated or free-pending ID (database `ids`).
///
/// Layout (version 1): `u8 version, u8 state, u32 set, u8 hasGuest, [u32 guest], blob data`.
struct IDRecord: Equatable {
    var set: UInt32
    var state: IDState
    var guest: UInt32?
    var data: [UInt8]

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 16 + data.count)
        w.u8(1)
        w.u8(state == .allocated ? 0 : 1)
        w.u32(set)
        if let guest {
            w.u8(1)
            w.u32(guest)
        } else {
            w.u8(0)
        }
        w.blob(data)
        return w.bytes
    }

    init(set: UInt32, state: IDState = .allocated, guest: UInt32? = nil, data: [UInt8] = []) {
        self.set = set
        self.state = state
        self.guest = guest
        self.data = data
    }

    /// Reads just the owning set from an encoded record.
    static func owner(decoding r: inout ValueReader) throws -> UInt32 {
        guard try r.u8() == 1 else { throw DecodingFailure() }
        _ = try r.u8()
        return try r.u32()
    }

    init(decoding r: inout ValueReader) throws {
        guard try r.u8() == 1 else { throw DecodingFailure() }
        switch try r.u8() {
        case 0: state = .allocated
        case 1: state = .freePending
        default: throw DecodingFailure()
        }
        set = try r.u32()
        guest = try r.u8() == 1 ? try r.u32() : nil
        data = try r.bytes(Int(try r.u32()))
    }
}

/// Names of the values in the `meta` database.
enum MetaKey {
    static let capacity = Array("capacity".utf8)
    static let reserved = Array("reserved".utf8)
    static let nextSetID = Array("next-set-id".utf8)
    static let storeID = Array("store-id".utf8)
    static let createdAt = Array("created-at".utf8)
}
