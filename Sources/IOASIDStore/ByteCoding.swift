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

/// Reads what ``ByteWriter`` wrote; any shortfall is a ``DecodingFailure``.
struct ByteReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }

    mutating func u8() throws(DecodingFailure) -> UInt8 {
        guard offset < bytes.count else { throw DecodingFailure() }
        defer { offset += 1 }
        return bytes[offset]
    }
    mutating func u16() throws(DecodingFailure) -> UInt16 { UInt16(truncatingIfNeeded: try fixed(2)) }
    mutating func u32() throws(DecodingFailure) -> UInt32 { UInt32(truncatingIfNeeded: try fixed(4)) }
    mutating func u64() throws(DecodingFailure) -> UInt64 { try fixed(8) }
    mutating func blob() throws(DecodingFailure) -> [UInt8] {
        let count = Int(try u32())
        guard bytes.count - offset >= count else { throw DecodingFailure() }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }
    mutating func string() throws(DecodingFailure) -> String {
        let raw = try blob()
        guard let s = String(validating: raw, as: UTF8.self) else { throw DecodingFailure() }
        return s
    }

    private mutating func fixed(_ width: Int) throws(DecodingFailure) -> UInt64 {
        guard bytes.count - offset >= width else { throw DecodingFailure() }
        var v: UInt64 = 0
        for i in 0..<width { v = v << 8 | UInt64(bytes[offset + i]) }
        offset += width
        return v
    }
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

    static func decodeU32(_ bytes: [UInt8], at offset: Int = 0) -> UInt32? {
        guard bytes.count >= offset + 4 else { return nil }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }
}
