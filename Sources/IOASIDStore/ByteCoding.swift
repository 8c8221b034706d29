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
    static func u32(_ v: UInt32) -> [UInt8] {
        [UInt8(truncatingIfNeeded: v >> 24), UInt8(truncatingIfNeeded: v >> 16),
         UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
    }

    static func pair(_ a: UInt32, _ b: UInt32) -> [UInt8] { u32(a) + u32(b) }

    /// `0x01 ‖ set`: a set record in `control`.
    static func set(_ id: UInt32) -> [UInt8] { [ControlTag.set, UInt8(truncatingIfNeeded: id >> 24), UInt8(truncatingIfNeeded: id >> 16), UInt8(truncatingIfNeeded: id >> 8), UInt8(truncatingIfNeeded: id)] }

    /// `0x02 ‖ first`: a free extent in `control`.
    static func free(_ first: UInt32) -> [UInt8] { [ControlTag.free, UInt8(truncatingIfNeeded: first >> 24), UInt8(truncatingIfNeeded: first >> 16), UInt8(truncatingIfNeeded: first >> 8), UInt8(truncatingIfNeeded: first)] }

    static func u64(_ v: UInt64) -> [UInt8] { u32(UInt32(truncatingIfNeeded: v >> 32)) + u32(UInt32(truncatingIfNeeded: v)) }

    static func decodeU64(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8, let high = decodeU32(bytes), let low = decodeU32(bytes, at: 4) else { return nil }
        return UInt64(high) << 32 | UInt64(low)
    }

    static func decodeU32(_ bytes: [UInt8], at offset: Int = 0) -> UInt32? {
        guard bytes.count >= offset + 4 else { return nil }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }
}
