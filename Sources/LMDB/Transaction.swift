internal import CLMDB
internal import CLMDBSupport

/// A read or write transaction, lent to the closure of ``Environment/read(_:)``
/// or ``Environment/write(_:)``.
///
/// A transaction is `~Copyable` and only ever *borrowed* by those closures, so
/// the compiler refuses to let it be returned, stored or captured by an escaping
/// closure: it cannot outlive the LMDB transaction it stands for.
///
/// Values are copied out as `[UInt8]` before they are returned, so nothing
/// points into the map after the transaction ends; ``withValue(forKey:in:_:)``
/// reads in place. Keys are compared bytewise, so encode integers big-endian to
/// get numeric order.
public struct Transaction: ~Copyable {
    let handle: OpaquePointer
    // Safe without a reference count: the environment's `read`/`write` keeps the
    // environment alive for the whole closure, and a borrowed ~Copyable
    // transaction cannot leave that closure.
    unowned(unsafe) let environment: Environment
    /// Counts the writes of a write transaction; `nil` for a read transaction.
    let writes: WriteCounter?

    @usableFromInline
    init(handle: OpaquePointer, environment: Environment, writes: WriteCounter?) {
        self.handle = handle
        self.environment = environment
        self.writes = writes
    }

    /// Whether this is a read-only transaction.
    public var isReadOnly: Bool { writes == nil }

    /// How many puts, deletes and drops this transaction has made so far
    /// (including those of committed nested transactions). Lets a caller check
    /// that a step which failed wrote nothing.
    package var writeCount: Int { writes?.count ?? 0 }

    // MARK: Reading

    /// The value stored under `key`, or `nil`.
    public func get(_ key: [UInt8], in db: Database) throws(LMDBError) -> [UInt8]? {
        let (rc, value) = key.withUnsafeBytes { k -> (Int32, [UInt8]?) in
            var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            var mv = MDB_val()
            let rc = clmdb_get(handle, db.dbi, &mk, &mv)
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

    /// ``withValue(forKey:in:_:)`` for a key given as raw bytes (for example on the stack).
    public func withValue<R>(rawKey k: UnsafeRawBufferPointer, in db: Database, _ body: (inout ValueReader) throws -> R) throws -> R? {
        var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
        var mv = MDB_val()
        let rc = clmdb_get(handle, db.dbi, &mk, &mv)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        var reader = ValueReader(UnsafeRawBufferPointer(start: mv.mv_data, count: mv.mv_size))
        return try body(&reader)
    }

    /// Runs `body` on the payload of the sealed record under `key` (see
    /// ``Sealing``), in place; `nil` when the key is absent.
    ///
    /// - Throws: ``DamagedRecord`` when the record's checksum does not match its
    ///   key and payload; ``LMDBError``; whatever `body` throws.
    public func withSealedValue<R>(forKey key: [UInt8], in db: Database, _ body: (inout ValueReader) throws -> R) throws -> R? {
        try key.withUnsafeBytes { k in try withSealedValue(rawKey: k, in: db, body) }
    }

    /// ``withSealedValue(forKey:in:_:)`` for a `UInt32` key stored big-endian, without building an array.
    // Inlinable, over a non-generic half: a caller's decoder is specialised and inlined
    // into its lookup instead of running through generic value witnesses.
    @inlinable
    public func withSealedValue<R>(forKey key: UInt32, in db: Database, _ body: (inout ValueReader) throws -> R) throws -> R? {
        guard let payload = try sealedPayload(forKey: key, in: db) else { return nil }
        var reader = ValueReader(payload)
        return try body(&reader)
    }

    /// ``withSealedValue(forKey:in:_:)`` for a key given as raw bytes (for example on the stack).
    @inlinable
    public func withSealedValue<R>(rawKey k: UnsafeRawBufferPointer, in db: Database, _ body: (inout ValueReader) throws -> R) throws -> R? {
        guard let payload = try sealedPayload(rawKey: k, in: db) else { return nil }
        var reader = ValueReader(payload)
        return try body(&reader)
    }

    /// The checked payload of the sealed record under `key` (pointing into the map, valid
    /// while the transaction lasts), or `nil` when there is none.
    ///
    /// - Throws: ``DamagedRecord`` when the seal does not match; ``LMDBError``.
    @usableFromInline
    func sealedPayload(forKey key: UInt32, in db: Database) throws -> UnsafeRawBufferPointer? {
        var mv = MDB_val()
        let rc = clmdb_get_u32(handle, db.dbi, key, &mv)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        let bigEndian = key.bigEndian
        let payload = Swift.withUnsafeBytes(of: bigEndian) { k in Sealing.payload(of: buffer(mv), key: k) }
        guard let payload else { throw DamagedRecord(database: db.name, key: BigEndian.bytes(key)) }
        return payload
    }

    /// ``sealedPayload(forKey:in:)`` for a key given as raw bytes.
    @usableFromInline
    func sealedPayload(rawKey k: UnsafeRawBufferPointer, in db: Database) throws -> UnsafeRawBufferPointer? {
        var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
        var mv = MDB_val()
        let rc = clmdb_get(handle, db.dbi, &mk, &mv)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        guard let payload = Sealing.payload(of: buffer(mv), key: k) else {
            throw DamagedRecord(database: db.name, key: [UInt8](k))
        }
        return payload
    }

    /// Stores `payload` sealed (see ``Sealing``) under `key`.
    ///
    /// - Parameter overwrite: when `false` and the key exists, nothing is written.
    /// - Returns: `false` only when `overwrite` is `false` and the key already existed.
    @discardableResult
    public func put(sealed payload: [UInt8], forKey key: [UInt8], in db: Database, overwrite: Bool = true) throws(LMDBError) -> Bool {
        // The payload and its CRC32C go straight into LMDB's room, with no sealed copy built first.
        let result = payload.withUnsafeBytes { p in
            key.withUnsafeBytes { k in
                Result { () throws(LMDBError) in
                    try put(sealedPayloadSize: p.count, rawKey: k, in: db, overwrite: overwrite) { $0.copyMemory(from: p) }
                }
            }
        }
        return try result.get()
    }

    /// Stores a sealed record (see ``Sealing``) whose `size`-byte payload `fill`
    /// writes straight into LMDB's room, under a key given as raw bytes (for
    /// example on the stack): no payload or key array is built.
    ///
    /// - Parameters:
    ///   - overwrite: when `false` and the key exists, nothing is written (and `fill` is not called).
    ///   - fill: writes exactly the payload's `size` bytes.
    /// - Returns: `false` only when `overwrite` is `false` and the key already existed.
    @discardableResult
    public func put(
        sealedPayloadSize size: Int, rawKey key: UnsafeRawBufferPointer, in db: Database, overwrite: Bool = true,
        _ fill: (UnsafeMutableRawBufferPointer) -> Void
    ) throws(LMDBError) -> Bool {
        try reserve(size + Sealing.trailerSize, rawKey: key, in: db, overwrite: overwrite) { target in
            let payload = UnsafeMutableRawBufferPointer(rebasing: target[..<size])
            fill(payload)
            target.storeBytes(of: Sealing.trailer(key: key, payload: UnsafeRawBufferPointer(payload)).bigEndian, toByteOffset: size, as: UInt32.self)
        }
    }

    /// The one put: `MDB_RESERVE` makes room for `size` bytes under `key`, and
    /// `fill` writes them. None of the package's databases has sorted
    /// duplicates, where RESERVE is not allowed.
    private func reserve(
        _ size: Int, rawKey k: UnsafeRawBufferPointer, in db: Database, overwrite: Bool,
        _ fill: (UnsafeMutableRawBufferPointer) -> Void
    ) throws(LMDBError) -> Bool {
        var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
        var mv = MDB_val(mv_size: size, mv_data: nil)
        let flags = UInt32(MDB_RESERVE) | (overwrite ? 0 : UInt32(MDB_NOOVERWRITE))
        let rc: Int32
        if let cursor = writes?.putCursor(on: db.dbi, in: handle) {
            rc = FaultInjection.call(.put, environment.path) { clmdb_cursor_put(cursor, &mk, &mv, flags) }
        } else {
            rc = FaultInjection.call(.put, environment.path) { clmdb_put(handle, db.dbi, &mk, &mv, flags) }
        }
        if rc == MDB_KEYEXIST && !overwrite { return false }
        try LMDBError.check(rc)
        // Only a successful put hands out room to write (with MDB_KEYEXIST, mv is the existing value).
        if let target = mv.mv_data { fill(UnsafeMutableRawBufferPointer(start: target, count: size)) }
        writes?.count += 1
        return true
    }

    /// Whether `key` is present.
    public func contains(_ key: [UInt8], in db: Database) throws(LMDBError) -> Bool {
        let rc = key.withUnsafeBytes { k -> Int32 in
            var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            var mv = MDB_val()
            return clmdb_get(handle, db.dbi, &mk, &mv)
        }
        if rc == MDB_NOTFOUND { return false }
        try LMDBError.check(rc)
        return true
    }

    /// The number of entries in `db`, read from its B-tree header (constant time).
    public func count(of db: Database) throws(LMDBError) -> Int {
        var st = MDB_stat()
        try LMDBError.check(clmdb_stat(handle, db.dbi, &st))
        return st.ms_entries
    }

    /// Runs `body` with a cursor over `db`; the cursor is closed when `body` returns.
    public func withCursor<R>(on db: Database, _ body: (borrowing Cursor) throws -> R) throws -> R {
        var raw: OpaquePointer?
        try LMDBError.check(clmdb_cursor_open(handle, db.dbi, &raw))
        guard let raw else { throw LMDBError.invalidArgument }
        let cursor = Cursor(handle: raw, writes: writes, environment: environment, database: db)
        return try body(cursor)
    }

    // MARK: Writing

    /// Stores `value` under `key`.
    ///
    /// - Parameter overwrite: when `false` and the key exists, nothing is written.
    /// - Returns: `false` only when `overwrite` is `false` and the key already existed.
    @discardableResult
    public func put(_ value: [UInt8], forKey key: [UInt8], in db: Database, overwrite: Bool = true) throws(LMDBError) -> Bool {
        let result = value.withUnsafeBytes { v in
            key.withUnsafeBytes { k in
                Result { () throws(LMDBError) in try reserve(v.count, rawKey: k, in: db, overwrite: overwrite) { $0.copyMemory(from: v) } }
            }
        }
        return try result.get()
    }

    /// Deletes `key`. Returns whether it was present.
    @discardableResult
    public func delete(_ key: [UInt8], in db: Database) throws(LMDBError) -> Bool {
        let result = key.withUnsafeBytes { k in Result { () throws(LMDBError) in try delete(rawKey: k, in: db) } }
        return try result.get()
    }

    /// ``delete(_:in:)`` for a key given as raw bytes (for example on the stack).
    @discardableResult
    public func delete(rawKey k: UnsafeRawBufferPointer, in db: Database) throws(LMDBError) -> Bool {
        var mk = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
        let rc = FaultInjection.call(.delete, environment.path) { clmdb_del(handle, db.dbi, &mk) }
        if rc == MDB_NOTFOUND { return false }
        try LMDBError.check(rc)
        writes?.count += 1
        return true
    }

    /// Deletes every entry of `db`, keeping the database itself.
    public func removeAll(in db: Database) throws(LMDBError) {
        try LMDBError.check(clmdb_drop(handle, db.dbi, 0))
        writes?.count += 1
    }

    /// Creates (if missing) the named database inside this write transaction.
    ///
    /// Creation commits with the transaction, so a migration can create its
    /// databases and record itself atomically. Use the handle through
    /// ``Environment/openDatabase(named:create:)`` once the transaction has committed.
    public func createDatabase(named name: String) throws(LMDBError) {
        var dbi = MDB_dbi()
        try LMDBError.check(clmdb_dbi_open(handle, name, UInt32(MDB_CREATE), &dbi))
        writes?.count += 1
    }

    /// The handle of an existing named database, opened inside this
    /// transaction (for migrations, which run before the environment's own
    /// handles are opened).
    ///
    /// - Throws: `MDB_NOTFOUND` when there is no such database.
    public func openDatabase(named name: String) throws(LMDBError) -> Database {
        var dbi = MDB_dbi()
        try LMDBError.check(clmdb_dbi_open(handle, name, 0, &dbi))
        return Database(dbi: dbi, name: name)
    }

    /// Runs `body` in a nested write transaction: when `body` throws, only
    /// what it wrote is undone and the error is rethrown; the parent
    /// transaction stays usable unless LMDB itself failed.
    ///
    /// - Throws: `EINVAL` in a read-only transaction; whatever `body` throws.
    @discardableResult
    public func nested<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        guard let writes else { throw LMDBError.invalidArgument }
        var raw: OpaquePointer?
        try LMDBError.check(clmdb_txn_begin(environment.handle, handle, 0, &raw))
        guard let raw else { throw LMDBError.invalidArgument }
        let childWrites = WriteCounter()
        let result: R
        do {
            result = try body(Transaction(handle: raw, environment: environment, writes: childWrites))
        } catch {
            _ = clmdb_txn_abort(raw)
            throw error
        }
        try LMDBError.check(clmdb_txn_commit(raw))
        writes.count += childWrites.count
        return result
    }
}

/// A sealed record whose checksum does not match its key and payload: the
/// file was damaged (or written by something other than this layer).
public struct DamagedRecord: Error, Sendable, Hashable, CustomStringConvertible {
    /// The database holding the record.
    public let database: String
    /// The record's key.
    public let key: [UInt8]

    /// Says which record.
    public var description: String {
        "the record under key \(key.map { String($0, radix: 16) }.joined(separator: " ")) in database \(database) fails its checksum"
    }
}

/// The write count of one write transaction (written only by the thread that owns it).
///
/// Its properties opt out of dynamic exclusivity checks: they are touched only
/// by the transaction's thread, by single reads and writes that never overlap
/// (a check on every put cost more than the put's own bookkeeping).
@usableFromInline
final class WriteCounter {
    @exclusivity(unchecked) var count = 0
    /// One cursor per database for this transaction's puts, opened at the
    /// second put into that database (a transaction that puts once gains
    /// nothing from it). A put through a cursor left where the last put was
    /// skips the descent from the root when the next key falls on the same
    /// leaf page (`mdb_put` always descends), which is what runs of ascending
    /// keys do. LMDB closes a write transaction's cursors when the transaction
    /// ends; a nested transaction has its own counter, and so its own cursors.
    @exclusivity(unchecked) private var putCursors: [PutCursor] = []

    private enum PutCursor {
        case none, putOnce
        case open(OpaquePointer)
    }

    /// The put cursor on database `dbi` of transaction `txn` (this counter's);
    /// `nil` for the first put into it, or when a cursor cannot be opened.
    func putCursor(on dbi: UInt32, in txn: OpaquePointer) -> OpaquePointer? {
        let index = Int(dbi)
        if index >= putCursors.count { putCursors += Array(repeating: .none, count: index + 1 - putCursors.count) }
        switch putCursors[index] {
        case .open(let cursor):
            return cursor
        case .none:
            putCursors[index] = .putOnce
            return nil
        case .putOnce:
            var raw: OpaquePointer?
            guard clmdb_cursor_open(txn, dbi, &raw) == 0, let raw else { return nil }
            putCursors[index] = .open(raw)
            return raw
        }
    }
}

@inline(__always)
func copy(_ val: MDB_val) -> [UInt8] {
    guard val.mv_size > 0, let base = val.mv_data else { return [] }
    return [UInt8](UnsafeRawBufferPointer(start: base, count: val.mv_size))
}
