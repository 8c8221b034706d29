import IOASIDMigrations
import LMDB

/// Appends fixed-width big-endian integers and length-prefixed bytes.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 16) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func blob(_ v: [UInt8]) {
        u32(UInt32(v.count))
        bytes.append(contentsOf: v)
    }
    mutating func string(_ v: String) { blob(Array(v.utf8)) }
}

/// The first byte of a key in the `control` database.
enum ControlTag {
    static let set: UInt8 = 0x01
    static let free: UInt8 = 0x02
}

/// A record's bytes do not decode.
struct DecodingFailure: Error {}

/// Big-endian key encodings, so that LMDB's bytewise order is numeric order.
enum Key {
    static func u32(_ v: UInt32) -> [UInt8] { BigEndian.bytes(v) }

    static func pair(_ a: UInt32, _ b: UInt32) -> [UInt8] { u32(a) + u32(b) }

    /// `0x01 ‖ set`: a set record in `control`.
    static func set(_ id: UInt32) -> [UInt8] { [ControlTag.set] + u32(id) }

    /// `0x02 ‖ first`: a free extent in `control`.
    static func free(_ first: UInt32) -> [UInt8] { [ControlTag.free] + u32(first) }

    static func u64(_ v: UInt64) -> [UInt8] { BigEndian.bytes(v) }

    static func decodeU64(_ bytes: [UInt8]) -> UInt64? { BigEndian.u64(bytes) }

    static func decodeU32(_ bytes: [UInt8], at offset: Int = 0) -> UInt32? { BigEndian.u32(bytes, at: offset) }
}

/// `UInt32`-keyed access (keys big-endian) for the databases keyed by an ID.
extension Transaction {
    func get(_ key: UInt32, in db: Database) throws(LMDBError) -> [UInt8]? { try get(Key.u32(key), in: db) }

    func put(_ value: [UInt8], forKey key: UInt32, in db: Database) throws(LMDBError) {
        try put(value, forKey: Key.u32(key), in: db)
    }

    @discardableResult
    func delete(_ key: UInt32, in db: Database) throws(LMDBError) -> Bool { try delete(Key.u32(key), in: db) }

    func withValue<R>(forKey key: UInt32, in db: Database, _ body: (inout ValueReader) throws -> R) throws -> R? {
        try withUnsafeBytes(of: key.bigEndian) { k in try withValue(rawKey: k, in: db, body) }
    }
}
