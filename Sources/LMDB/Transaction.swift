internal import CLMDB

/// A read or write transaction, valid only inside the closure that received it.
///
/// A `Transaction` is a plain handle so that higher layers can wrap it; the
/// closures of ``Environment/read(_:)`` and ``Environment/write(_:)`` bound its
/// life. Never let one escape its closure.
///
/// Values are copied out as `[UInt8]` before they are returned, so nothing
/// points into the map after the transaction ends. Keys are compared bytewise,
/// so encode integers big-endian to get numeric order.
public struct Transaction {
    let handle: OpaquePointer
    // Unowned: a transaction lives inside its environment's read/write closure, and
    // skipping the reference count keeps lookups cheap.
    unowned(unsafe) let environment: Environment
    /// Whether this is a read-only transaction.
    public let isReadOnly: Bool

    init(handle: OpaquePointer, environment: Environment, isReadOnly: Bool) {
        self.handle = handle
        self.environment = environment
        self.isReadOnly = isReadOnly
    }

    /// The value stored under `key`, or `nil`.
    public func get(_ key: [UInt8], in db: Database) throws(LMDBError) -> [UInt8]? {
        let (rc, value) = key.withUnsafeBytes { k -> (Int32, [UInt8]?) in
            var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            var mv = MDB_val()
            let rc = mdb_get(handle, db.dbi, &mk, &mv)
            return (rc, rc == 0 ? copy(mv) : nil)
        }
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        return value
    }

    /// Runs `body` on the value stored under `key` while it is still in the map
    /// (no copy of the whole value); `nil` when the key is absent.
    public func withValue<R>(forKey key: [UInt8], in db: Database, _ body: (inout ValueReader) throws -> R) throws -> R? {
        try key.withUnsafeBytes { k in try withValue(rawKey: k, in: db, body) }
    }

    /// ``withValue(forKey:in:_:)`` for a `UInt32` key stored big-endian.
    public func withValue<R>(forKey key: UInt32, in db: Database, _ body: (inout ValueReader) throws -> R) throws -> R? {
        try withUnsafeBytes(of: key.bigEndian) { k in try withValue(rawKey: k, in: db, body) }
    }

    private func withValue<R>(rawKey k: UnsafeRawBufferPointer, in db: Database, _ body: (inout ValueReader) throws -> R) throws -> R? {
        var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
        var mv = MDB_val()
        let rc = mdb_get(handle, db.dbi, &mk, &mv)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        var reader = ValueReader(UnsafeRawBufferPointer(start: mv.mv_data, count: mv.mv_size))
        return try body(&reader)
    }

    /// The value stored under a `UInt32` key (big-endian), or `nil`.
    public func get(_ key: UInt32, in db: Database) throws(LMDBError) -> [UInt8]? {
        try get(Self.bytes(key), in: db)
    }

    /// Stores `value` under a `UInt32` key (big-endian).
    public func put(_ value: [UInt8], forKey key: UInt32, in db: Database) throws(LMDBError) {
        try put(value, forKey: Self.bytes(key), in: db)
    }

    /// Deletes a `UInt32` key (big-endian). Returns whether it was present.
    @discardableResult
    public func delete(_ key: UInt32, in db: Database) throws(LMDBError) -> Bool {
        try delete(Self.bytes(key), in: db)
    }

    static func bytes(_ key: UInt32) -> [UInt8] {
        [UInt8(truncatingIfNeeded: key >> 24), UInt8(truncatingIfNeeded: key >> 16),
         UInt8(truncatingIfNeeded: key >> 8), UInt8(truncatingIfNeeded: key)]
    }

    /// Whether `key` is present.
    public func contains(_ key: [UInt8], in db: Database) throws(LMDBError) -> Bool {
        let rc = key.withUnsafeBytes { k -> Int32 in
            var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            var mv = MDB_val()
            return mdb_get(handle, db.dbi, &mk, &mv)
        }
        if rc == MDB_NOTFOUND { return false }
        try LMDBError.check(rc)
        return true
    }

    /// Stores `value` under `key`.
    ///
    /// - Parameter overwrite: when `false` and the key exists, nothing is written.
    /// - Returns: `false` only when `overwrite` is `false` and the key already existed.
    @discardableResult
    public func put(_ value: [UInt8], forKey key: [UInt8], in db: Database, overwrite: Bool = true) throws(LMDBError) -> Bool {
        let rc = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
                var mv = MDB_val(mv_size: v.count, mv_data: UnsafeMutableRawPointer(mutating: v.baseAddress))
                return FaultInjection.call(.put, environment.path) {
                    mdb_put(handle, db.dbi, &mk, &mv, overwrite ? 0 : UInt32(MDB_NOOVERWRITE))
                }
            }
        }
        if rc == MDB_KEYEXIST && !overwrite { return false }
        try LMDBError.check(rc)
        return true
    }

    /// Deletes `key`. Returns whether it was present.
    @discardableResult
    public func delete(_ key: [UInt8], in db: Database) throws(LMDBError) -> Bool {
        let rc = key.withUnsafeBytes { k in
            var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            return FaultInjection.call(.delete, environment.path) { mdb_del(handle, db.dbi, &mk, nil) }
        }
        if rc == MDB_NOTFOUND { return false }
        try LMDBError.check(rc)
        return true
    }

    /// The number of entries in `db`, read from its B-tree header (constant time).
    public func count(of db: Database) throws(LMDBError) -> Int {
        var st = MDB_stat()
        try LMDBError.check(mdb_stat(handle, db.dbi, &st))
        return st.ms_entries
    }

    /// Deletes every entry of `db`, keeping the database itself.
    public func removeAll(in db: Database) throws(LMDBError) {
        try LMDBError.check(mdb_drop(handle, db.dbi, 0))
    }

    /// Creates (if missing) the named database inside this write transaction.
    ///
    /// Creation commits with the transaction, so a migration can create its
    /// databases and record itself atomically. Use the handle through
    /// ``Environment/openDatabase(named:create:)`` once the transaction has committed.
    public func createDatabase(named name: String) throws(LMDBError) {
        var dbi = MDB_dbi()
        try LMDBError.check(mdb_dbi_open(handle, name, UInt32(MDB_CREATE), &dbi))
    }

    /// Runs `body` with a cursor over `db`; the cursor is closed when `body` returns.
    public func withCursor<R>(on db: Database, _ body: (borrowing Cursor) throws -> R) throws -> R {
        var raw: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(handle, db.dbi, &raw))
        guard let raw else { throw LMDBError.invalidArgument }
        let cursor = Cursor(handle: raw)
        return try body(cursor)
    }

    /// Runs `body` in a nested write transaction: when `body` throws, only
    /// what it wrote is undone and the error is rethrown; the parent
    /// transaction stays usable unless LMDB itself failed.
    @discardableResult
    public func nested<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        precondition(!isReadOnly, "nested transactions need a write transaction")
        var raw: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(environment.handle, handle, 0, &raw))
        guard let raw else { throw LMDBError.invalidArgument }
        let result: R
        do {
            result = try body(Transaction(handle: raw, environment: environment, isReadOnly: false))
        } catch {
            mdb_txn_abort(raw)
            throw error
        }
        try LMDBError.check(mdb_txn_commit(raw))
        return result
    }
}

@inline(__always)
func copy(_ val: MDB_val) -> [UInt8] {
    guard val.mv_size > 0, let base = val.mv_data else { return [] }
    return [UInt8](UnsafeRawBufferPointer(start: base, count: val.mv_size))
}
