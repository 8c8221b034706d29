/// Reads fixed-width big-endian integers and byte runs out of a value while it
/// is still in the map, without copying the whole value first.
///
/// Valid only inside the closure that received it (``Transaction/withValue(forKey:in:_:)``).
/// Reads past the end throw ``ValueReader/Underflow``.
public struct ValueReader: ~Copyable {
    /// A read ran past the end of the value.
    public struct Underflow: Error, Sendable {
        @inlinable init() {}
    }

    // Usable from inline code: the decoders of other modules read a few bytes per record, and a call per byte would cost more than the reads.
    @usableFromInline let base: UnsafeRawBufferPointer
    @usableFromInline var offset = 0

    @usableFromInline init(_ base: UnsafeRawBufferPointer) { self.base = base }

    /// A reader over bytes held in an array, for decoding a copied-out value.
    /// `body` gets the reader; it must not keep it.
    public static func reading<R>(_ bytes: [UInt8], _ body: (inout ValueReader) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { raw in
            var reader = ValueReader(raw)
            return try body(&reader)
        }
    }

    /// Bytes not yet read.
    @inlinable public var remaining: Int { base.count - offset }

    // Always inlined, as are the integers below: a decoder reads a few of them per record,
    // and the optimiser left them as calls (one per field) in the decoders of other modules.

    /// Reads one byte.
    @inlinable @inline(__always) public mutating func u8() throws(Underflow) -> UInt8 {
        guard remaining >= 1 else { throw Underflow() }
        defer { offset += 1 }
        return base[offset]
    }

    /// Reads a big-endian `UInt16`.
    @inlinable @inline(__always) public mutating func u16() throws(Underflow) -> UInt16 { try integer() }
    /// Reads a big-endian `UInt32`.
    @inlinable @inline(__always) public mutating func u32() throws(Underflow) -> UInt32 { try integer() }
    /// Reads a big-endian `UInt64`.
    @inlinable @inline(__always) public mutating func u64() throws(Underflow) -> UInt64 { try integer() }

    /// Copies out the next `count` bytes.
    @inlinable @inline(__always) public mutating func bytes(_ count: Int) throws(Underflow) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw Underflow() }
        // Most records carry no bytes (an ID without private data): no call for those.
        if count == 0 { return [] }
        return copyBytes(count)
    }

    /// Copies out the next `count` bytes, which are there.
    @usableFromInline mutating func copyBytes(_ count: Int) -> [UInt8] {
        defer { offset += count }
        return [UInt8](UnsafeRawBufferPointer(rebasing: base[offset..<offset + count]))
    }

    @inlinable @inline(__always) mutating func integer<T: FixedWidthInteger>() throws(Underflow) -> T {
        let width = MemoryLayout<T>.size
        guard remaining >= width else { throw Underflow() }
        defer { offset += width }
        return T(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
