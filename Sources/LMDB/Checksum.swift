internal import CLMDB
internal import CLMDBSupport

/// CRC32C (Castagnoli, the checksum of iSCSI, ext4 metadata and RocksDB):
/// well studied, detects every burst error up to 32 bits, and computed by one
/// CPU instruction per 8 bytes on x86-64 (SSE4.2) and ARMv8 (CRC extension),
/// with a table-driven fallback elsewhere.
public enum Checksum {
    /// Whether the CPU has the instruction (found once, in C: a Swift `static let` would be a lazy global, checked on every call).
    private static var hardware: Bool { clmdb_crc32c_hardware() != 0 }

    private static let table: [UInt32] = (0..<256).map { (n: UInt32) -> UInt32 in
        var c = n
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// The CRC32C of `bytes`.
    public static func crc32c(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { ~update(0xFFFF_FFFF, $0) }
    }

    /// The CRC32C of `first` followed by `second`.
    @inline(__always)
    package static func crc32c(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> UInt32 {
        // One call into C for both halves when the CPU has the instruction (every read checks a seal).
        var crc: UInt32 = 0
        if clmdb_crc32c_pair(first.baseAddress, first.count, second.baseAddress, second.count, &crc) != 0 { return crc }
        return ~softwareUpdate(softwareUpdate(0xFFFF_FFFF, first), second)
    }

    @inline(__always)
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return crc }
        if hardware { return clmdb_crc32c_update(crc, base, bytes.count) }
        return softwareUpdate(crc, bytes)
    }

    /// The table-driven CRC32C of CPUs without a CRC instruction (tests check
    /// that it agrees with the instruction, so stores move between machines).
    package static func softwareUpdate(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = crc
        for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return c
    }

    /// Whether this CPU computes CRC32C with an instruction.
    package static var usesHardware: Bool { hardware }
}

/// Sealed records: a value stored with a CRC32C of its key and payload as a
/// 4-byte big-endian trailer, so that a damaged value, or a value found under
/// another key, is detected when it is read instead of being decoded wrongly.
public enum Sealing {
    /// The bytes a sealed record adds to its payload.
    public static let trailerSize = 4

    /// For `ioasid-bench` only, to measure what the checksums cost: seals with
    /// a zero trailer and accepts any trailer. Set it before opening a scratch
    /// store and never on a store that is kept.
    /// (Set only before any store is open, so reads need no exclusivity check.)
    @exclusivity(unchecked) package nonisolated(unsafe) static var benchmarkSkipsChecksums = false

    /// `payload ‖ CRC32C(key ‖ payload)`.
    public static func seal(_ payload: [UInt8], key: [UInt8]) -> [UInt8] {
        let crc = key.withUnsafeBytes { k in payload.withUnsafeBytes { p in trailer(key: k, payload: p) } }
        var sealed = payload
        sealed.reserveCapacity(payload.count + trailerSize)
        sealed.append(contentsOf: BigEndian.bytes(crc))
        return sealed
    }

    /// The trailer that seals `payload` under `key`: its CRC32C (0 when the benchmark skips checksums).
    static func trailer(key: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) -> UInt32 {
        benchmarkSkipsChecksums ? 0 : Checksum.crc32c(key, payload)
    }

    /// The payload of a sealed `value` stored under `key`, or `nil` when the trailer does not match.
    @inline(__always)
    static func payload(of value: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard value.count >= trailerSize else { return nil }
        let payload = UnsafeRawBufferPointer(rebasing: value[..<(value.count - trailerSize)])
        if benchmarkSkipsChecksums { return payload }
        let stored = UInt32(bigEndian: value.loadUnaligned(fromByteOffset: payload.count, as: UInt32.self))
        return Checksum.crc32c(key, payload) == stored ? payload : nil
    }
}

/// Big-endian integer encoding: LMDB compares keys bytewise, so big-endian
/// integers sort in numeric order. (``ValueReader`` decodes them in place.)
public enum BigEndian {
    /// The four bytes of `v`, most significant first.
    public static func bytes(_ v: UInt32) -> [UInt8] {
        [UInt8(truncatingIfNeeded: v >> 24), UInt8(truncatingIfNeeded: v >> 16),
         UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
    }

    /// The eight bytes of `v`, most significant first.
    public static func bytes(_ v: UInt64) -> [UInt8] {
        bytes(UInt32(truncatingIfNeeded: v >> 32)) + bytes(UInt32(truncatingIfNeeded: v))
    }

    /// The `UInt32` at `offset` of `bytes`, or `nil` when the bytes run out.
    public static func u32(_ bytes: [UInt8], at offset: Int = 0) -> UInt32? {
        guard offset >= 0, bytes.count >= offset + 4 else { return nil }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    /// The `UInt64` of exactly eight bytes, or `nil`.
    public static func u64(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8, let high = u32(bytes), let low = u32(bytes, at: 4) else { return nil }
        return UInt64(high) << 32 | UInt64(low)
    }
}
