/// Where the store's records live and how their keys are encoded: the one home
/// of the storage layout, shared by the store, the migrations, the tools and the tests.
package enum StoreLayout {
    /// The key of a migration's history record: its number, big-endian.
    package static func migrationKey(_ number: UInt32) -> [UInt8] { BigEndian.bytes(number) }

    /// The number of a history key, or `nil` when it is malformed.
    package static func decodeMigrationKey(_ key: [UInt8]) -> UInt32? { key.count == 4 ? BigEndian.u32(key) : nil }
}

/// Big-endian integer encoding: LMDB compares keys bytewise, so big-endian
/// integers sort in numeric order.
package enum BigEndian {
    /// The four bytes of `v`, most significant first.
    package static func bytes(_ v: UInt32) -> [UInt8] {
        [UInt8(truncatingIfNeeded: v >> 24), UInt8(truncatingIfNeeded: v >> 16),
         UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
    }

    /// The eight bytes of `v`, most significant first.
    package static func bytes(_ v: UInt64) -> [UInt8] {
        bytes(UInt32(truncatingIfNeeded: v >> 32)) + bytes(UInt32(truncatingIfNeeded: v))
    }

    /// The `UInt32` at `offset`, or `nil` when the bytes run out.
    package static func u32(_ bytes: [UInt8], at offset: Int = 0) -> UInt32? {
        guard offset >= 0, bytes.count >= offset + 4 else { return nil }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    /// The `UInt64` of exactly eight bytes, or `nil`.
    package static func u64(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8, let high = u32(bytes), let low = u32(bytes, at: 4) else { return nil }
        return UInt64(high) << 32 | UInt64(low)
    }
}
