internal import CLMDB
internal import CLMDBSupport

/// A cursor over one database, lent to the closure of ``Transaction/withCursor(on:_:)``.
///
/// The `first()`/`next()`/`seek` moves return the entry they land on, copied
/// out, or `nil` when there is none. The `withEntry` moves and ``forEach(from:_:)``
/// lend a ``CursorEntry`` that reads the entry in place, without copying.
public struct Cursor: ~Copyable {
    let handle: OpaquePointer
    // Not counted (a retain and a release per cursor otherwise): the transaction that
    // lends the cursor keeps both alive, and a borrowed ~Copyable cursor cannot
    // outlive the closure it is lent to.
    unowned(unsafe) let environment: Environment
    unowned(unsafe) let writes: WriteCounter?
    let database: Database

    init(handle: OpaquePointer, writes: WriteCounter?, environment: Environment, database: Database) {
        self.handle = handle
        self.writes = writes
        self.environment = environment
        self.database = database
    }

    deinit { mdb_cursor_close(handle) }

    // MARK: Copying moves

    /// The first entry.
    public func first() throws(LMDBError) -> Entry? { try move(MDB_FIRST) }
    /// The last entry.
    public func last() throws(LMDBError) -> Entry? { try move(MDB_LAST) }
    /// The entry after the current one.
    public func next() throws(LMDBError) -> Entry? { try move(MDB_NEXT) }
    /// The entry before the current one.
    public func previous() throws(LMDBError) -> Entry? { try move(MDB_PREV) }

    /// The first entry whose key is greater than or equal to `key` (`MDB_SET_RANGE`).
    public func seek(atOrAfter key: [UInt8]) throws(LMDBError) -> Entry? {
        try copied(position(atOrAfter: key))
    }

    /// The last entry whose key is less than or equal to `key`.
    public func seek(atOrBefore key: [UInt8]) throws(LMDBError) -> Entry? {
        if let entry = try seek(atOrAfter: key) {
            if entry.key == key { return entry }
            return try previous()
        }
        return try last()
    }

    private func move(_ op: MDB_cursor_op) throws(LMDBError) -> Entry? {
        try copied(position(op))
    }

    private func copied(_ found: (Int32, MDB_val, MDB_val)) throws(LMDBError) -> Entry? {
        let (rc, mk, mv) = found
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        return Entry(key: [UInt8](buffer(mk)), value: [UInt8](buffer(mv)))
    }

    private func position(_ op: MDB_cursor_op) -> (Int32, MDB_val, MDB_val) {
        var mk = MDB_val()
        var mv = MDB_val()
        let rc = clmdb_cursor_get(handle, &mk, &mv, op)
        return (rc, mk, mv)
    }

    private func position(atOrAfter key: [UInt8]) -> (Int32, MDB_val, MDB_val) {
        var mk = MDB_val()
        var mv = MDB_val()
        let rc = key.withUnsafeBytes { k -> Int32 in
            mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            return clmdb_cursor_get(handle, &mk, &mv, MDB_SET_RANGE)
        }
        return (rc, mk, mv)
    }

    // MARK: In-place moves

    /// Moves to the first entry whose key is greater than or equal to `key`
    /// and lends it to `body`; `nil` when there is none.
    public func withEntry<R>(atOrAfter key: [UInt8], _ body: (borrowing CursorEntry) throws -> R) throws -> R? {
        try lend(position(atOrAfter: key), body)
    }

    /// Moves to the first entry and lends it to `body`; `nil` when the database is empty.
    public func withFirst<R>(_ body: (borrowing CursorEntry) throws -> R) throws -> R? { try lend(position(MDB_FIRST), body) }

    /// Moves to the last entry and lends it to `body`; `nil` when the database is empty.
    public func withLast<R>(_ body: (borrowing CursorEntry) throws -> R) throws -> R? { try lend(position(MDB_LAST), body) }

    /// Moves to the next entry and lends it to `body`; `nil` at the end.
    public func withNext<R>(_ body: (borrowing CursorEntry) throws -> R) throws -> R? { try lend(position(MDB_NEXT), body) }

    /// Moves to the previous entry and lends it to `body`; `nil` at the start.
    public func withPrevious<R>(_ body: (borrowing CursorEntry) throws -> R) throws -> R? { try lend(position(MDB_PREV), body) }

    private func lend<R>(_ found: (Int32, MDB_val, MDB_val), _ body: (borrowing CursorEntry) throws -> R) throws -> R? {
        let (rc, mk, mv) = found
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        return try body(CursorEntry(key: buffer(mk), value: buffer(mv)))
    }

    /// Visits entries in key order from the first key at or after `key`,
    /// lending each to `body` in place, until `body` returns `false` or the
    /// entries run out. An empty `key` starts at the first entry.
    public func forEach(from key: [UInt8] = [], _ body: (borrowing CursorEntry) throws -> Bool) throws {
        var mk = MDB_val()
        var mv = MDB_val()
        var rc = key.withUnsafeBytes { k -> Int32 in
            if k.isEmpty { return clmdb_cursor_get(handle, &mk, &mv, MDB_FIRST) }
            mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            return clmdb_cursor_get(handle, &mk, &mv, MDB_SET_RANGE)
        }
        while rc == 0 {
            guard try body(CursorEntry(key: buffer(mk), value: buffer(mv))) else { return }
            rc = clmdb_cursor_get(handle, &mk, &mv, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { throw LMDBError(code: rc) }
    }

    // MARK: Writing at the cursor

    /// Replaces the value of the entry the cursor is on (`MDB_CURRENT`), sealed
    /// (see ``Sealing``) under `key`, which must be the entry's key.
    public func replaceCurrent(sealed payload: [UInt8], key: [UInt8]) throws(LMDBError) {
        try replaceCurrent(Sealing.seal(payload, key: key), key: key)
    }

    /// Replaces the value of the entry the cursor is on (`MDB_CURRENT`) with
    /// `value` as given; `key` must be the entry's key.
    public func replaceCurrent(_ value: [UInt8], key: [UInt8]) throws(LMDBError) {
        let rc = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
                var mv = MDB_val(mv_size: v.count, mv_data: UnsafeMutableRawPointer(mutating: v.baseAddress))
                return FaultInjection.call(.put, environment.path) { clmdb_cursor_put(handle, &mk, &mv, UInt32(MDB_CURRENT)) }
            }
        }
        try LMDBError.check(rc)
        writes?.count += 1
    }

    /// Deletes the entry the cursor is on.
    public func deleteCurrent() throws(LMDBError) {
        try LMDBError.check(FaultInjection.call(.delete, environment.path) { clmdb_cursor_del(handle) })
        writes?.count += 1
    }
}

/// One entry of a database, read in place: lent to a closure by a ``Cursor``
/// and valid only inside it.
public struct CursorEntry: ~Copyable {
    let key: UnsafeRawBufferPointer
    let value: UnsafeRawBufferPointer

    /// The key's length in bytes.
    public var keyCount: Int { key.count }
    /// The value's length in bytes.
    public var valueCount: Int { value.count }

    /// A copy of the key.
    public func keyBytes() -> [UInt8] { [UInt8](key) }
    /// A copy of the value.
    public func valueBytes() -> [UInt8] { [UInt8](value) }

    /// The key byte at `offset`, if the key is that long.
    public func keyByte(at offset: Int) -> UInt8? { offset >= 0 && offset < key.count ? key[offset] : nil }

    /// The big-endian `UInt32` at `offset` of the key, if the key is that long.
    public func keyU32(at offset: Int = 0) -> UInt32? {
        guard offset >= 0, key.count >= offset + 4 else { return nil }
        return UInt32(bigEndian: key.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// The big-endian `UInt64` of a key of exactly eight bytes.
    public func keyU64() -> UInt64? {
        guard key.count == 8 else { return nil }
        return UInt64(bigEndian: key.loadUnaligned(as: UInt64.self))
    }

    /// Whether the key starts with `prefix`.
    public func keyHasPrefix(_ prefix: [UInt8]) -> Bool {
        key.count >= prefix.count && prefix.withUnsafeBytes { p in key.prefix(p.count).elementsEqual(p) }
    }

    /// Whether the key equals `bytes`.
    public func keyEquals(_ bytes: [UInt8]) -> Bool { key.elementsEqual(bytes) }

    /// The key bytes after the first `offset`, as UTF-8 text, if they are valid UTF-8.
    public func keyText(from offset: Int = 0) -> String? {
        guard offset >= 0, offset <= key.count else { return nil }
        return String(validating: UnsafeRawBufferPointer(rebasing: key[offset...]), as: UTF8.self)
    }

    /// A reader over the whole value.
    public func reader() -> ValueReader { ValueReader(value) }

    /// A reader over the payload of a sealed value (see ``Sealing``), or `nil`
    /// when its checksum does not match this key and payload.
    public func sealedReader() -> ValueReader? {
        Sealing.payload(of: value, key: key).map(ValueReader.init)
    }
}

@inline(__always)
func buffer(_ val: MDB_val) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: val.mv_data, count: val.mv_size)
}
