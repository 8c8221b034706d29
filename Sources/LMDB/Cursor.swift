internal import CLMDB

/// A cursor over one database, valid only inside ``Transaction/withCursor(on:_:)``.
///
/// Every move returns the entry it lands on (copied out), or `nil` when
/// there is none.
public struct Cursor: ~Copyable {
    let handle: OpaquePointer
    let writes: WriteCounter?

    init(handle: OpaquePointer, writes: WriteCounter?) {
        self.handle = handle
        self.writes = writes
    }

    deinit { mdb_cursor_close(handle) }

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
        let (rc, entry) = key.withUnsafeBytes { k -> (Int32, Entry?) in
            var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            var mv = MDB_val()
            let rc = mdb_cursor_get(handle, &mk, &mv, MDB_SET_RANGE)
            return (rc, rc == 0 ? Entry(key: copy(mk), value: copy(mv)) : nil)
        }
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        return entry
    }

    /// The last entry whose key is less than or equal to `key`.
    public func seek(atOrBefore key: [UInt8]) throws(LMDBError) -> Entry? {
        if let entry = try seek(atOrAfter: key) {
            if entry.key == key { return entry }
            return try previous()
        }
        return try last()
    }

    /// Visits entries in key order from the first key at or after `key`, handing
    /// `body` each key and a reader over its value (not copied), until `body`
    /// returns `false` or the entries run out. An empty `key` starts at the first entry.
    public func scan(from key: [UInt8], _ body: ([UInt8], inout ValueReader) throws -> Bool) throws {
        var mk = MDB_val()
        var mv = MDB_val()
        var rc = key.withUnsafeBytes { k -> Int32 in
            if k.isEmpty { return mdb_cursor_get(handle, &mk, &mv, MDB_FIRST) }
            mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            return mdb_cursor_get(handle, &mk, &mv, MDB_SET_RANGE)
        }
        while rc == 0 {
            var reader = ValueReader(UnsafeRawBufferPointer(start: mv.mv_data, count: mv.mv_size))
            guard try body(copy(mk), &reader) else { return }
            rc = mdb_cursor_get(handle, &mk, &mv, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { throw LMDBError(code: rc) }
    }

    private func move(_ op: MDB_cursor_op) throws(LMDBError) -> Entry? {
        var mk = MDB_val()
        var mv = MDB_val()
        let rc = mdb_cursor_get(handle, &mk, &mv, op)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        return Entry(key: copy(mk), value: copy(mv))
    }
}
