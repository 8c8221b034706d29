// The raw baselines: LMDB's C API called directly, with no Swift layer between.
//
// The environment is opened the way the store opens its own (durable commits,
// `MDB_NOTLS`, 1 GiB map, named databases), and the records are the bytes the
// store keeps: every value the store writes is its record followed by a 4-byte
// CRC32C seal (`Sealing`), so an ID record is 15 bytes under a 4-byte big-endian
// key (`StoreLayout.swift`: u8 version, u8 state, u32 set, u8 hasGuest, u32 data
// length, then the seal), 19 with a guest ID, 21 with a guest and two bytes of
// private data; a guest mapping is 8 bytes under an 8-byte key (set ‖ guest). The
// raw side stores a trailer of zeros where the seal goes: the bytes, not the
// checksum's computation, which stays on the store's side of each ratio.

import CLMDB
import Foundation
import IOASIDMigrations
import LMDB

/// An LMDB call that failed.
struct RawError: Error, CustomStringConvertible {
    let call: String
    let code: Int32
    var description: String { "\(call): \(String(cString: mdb_strerror(code))) (\(code))" }
}

@inline(__always)
func check(_ code: Int32, _ call: @autoclosure () -> String) throws(RawError) {
    if code != 0 { throw RawError(call: call(), code: code) }
}

/// The bytes the store keeps for an ID record (version 1): its encoding and a seal-sized trailer.
func idRecordBytes(set: UInt32, guest: UInt32? = nil, data: [UInt8] = []) -> [UInt8] {
    var bytes: [UInt8] = [1, 0]
    bytes += bigEndian(set)
    if let guest {
        bytes.append(1)
        bytes += bigEndian(guest)
    } else {
        bytes.append(0)
    }
    bytes += bigEndian(UInt32(data.count)) + data
    return sealSized(bytes)
}

/// `payload` followed by zeros where the store puts its seal: the size of the value the store keeps.
func sealSized(_ payload: [UInt8]) -> [UInt8] {
    payload + [UInt8](repeating: 0, count: Sealing.trailerSize)
}

/// Checks that the raw ID records, built by hand above, are the size of the store's (from its
/// encoder), so that a change of the store's layout cannot leave the baselines smaller or larger.
func checkRawRecordSizes() throws {
    let cases: [(raw: [UInt8], guest: UInt32?, data: Int)] = [
        (idRecordBytes(set: 2), nil, 0), (idRecordBytes(set: 2, guest: 1), 1, 0), (idRecordBytes(set: 2, guest: 0, data: [1, 2]), 0, 2),
    ]
    for c in cases where c.raw.count != IDRecord.encodedSize(guest: c.guest, dataCount: c.data) + Sealing.trailerSize {
        throw RawError(call: "raw ID record of \(c.raw.count) bytes does not match the store's", code: EINVAL)
    }
}

/// The bytes the store keeps for an ALLOC event of the bench's set (no guest, no data; kind 1 is ALLOC),
/// from the store's own encoder.
let allocEventBytes = sealSized(EventRecord(kind: 1, timestamp: 0, set: 2, token: benchToken, epoch: 1, id: 1).encoded())

func bigEndian(_ v: UInt32) -> [UInt8] {
    [UInt8(truncatingIfNeeded: v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
}

/// A value kept in memory that LMDB may read for as long as the owner lives.
final class RawBytes {
    let pointer: UnsafeMutableRawBufferPointer
    init(_ bytes: [UInt8]) {
        pointer = .allocate(byteCount: max(1, bytes.count), alignment: 8)
        pointer.copyBytes(from: bytes)
        count = bytes.count
    }
    let count: Int
    var val: MDB_val { MDB_val(mv_size: count, mv_data: pointer.baseAddress) }
    deinit { pointer.deallocate() }
}

/// One LMDB environment opened through the C API, with named databases.
final class RawEnvironment {
    let env: OpaquePointer
    let path: String
    private var dbis: [String: MDB_dbi] = [:]

    /// Opens (creating) a durable environment at `path` — no `MDB_NOSYNC`, with `MDB_NOTLS` —
    /// and the named databases, as the store does.
    init(path: String, databases: [String] = ["ids"], mapSize: Int = 1 << 30) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        var handle: OpaquePointer?
        try check(mdb_env_create(&handle), "mdb_env_create")
        guard let handle else { throw RawError(call: "mdb_env_create", code: EINVAL) }
        env = handle
        do {
            try check(mdb_env_set_maxdbs(env, 32), "mdb_env_set_maxdbs")
            try check(mdb_env_set_mapsize(env, mapSize), "mdb_env_set_mapsize")
            try check(mdb_env_open(env, path, UInt32(MDB_NOTLS), 0o600), "mdb_env_open")
            try check(mdb_env_sync(env, 1), "mdb_env_sync")
            var txn: OpaquePointer?
            try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
            for name in databases {
                var dbi = MDB_dbi()
                let rc = mdb_dbi_open(txn, name, UInt32(MDB_CREATE), &dbi)
                if rc != 0 {
                    mdb_txn_abort(txn)
                    throw RawError(call: "mdb_dbi_open", code: rc)
                }
                dbis[name] = dbi
            }
            try check(mdb_txn_commit(txn), "mdb_txn_commit")
        } catch {
            mdb_env_close(env)
            throw error
        }
    }

    deinit { mdb_env_close(env) }

    func dbi(_ name: String = "ids") throws -> MDB_dbi {
        guard let dbi = dbis[name] else { throw RawError(call: "no database \(name)", code: EINVAL) }
        return dbi
    }

    // MARK: Writes

    /// One durable write transaction: `body` runs with the transaction, then `mdb_txn_commit`.
    func write(_ body: (OpaquePointer) throws -> Void) throws {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
        guard let txn else { throw RawError(call: "mdb_txn_begin", code: EINVAL) }
        do { try body(txn) } catch {
            mdb_txn_abort(txn)
            throw error
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    /// `mdb_put` of `value` under each 4-byte big-endian key of `keys`, all in one durable commit.
    func commitPuts(_ keys: some Sequence<UInt32>, value: RawBytes, in db: String = "ids") throws {
        let dbi = try dbi(db)
        try write { txn in try Self.put(txn, dbi, keys, value) }
    }

    /// `mdb_put` of each key of `keys` in `txn`.
    static func put(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ keys: some Sequence<UInt32>, _ value: RawBytes) throws(RawError) {
        var v = value.val
        for key in keys {
            var k = key.bigEndian
            let rc = withUnsafeMutableBytes(of: &k) { kb -> Int32 in
                var mk = MDB_val(mv_size: 4, mv_data: kb.baseAddress)
                return mdb_put(txn, dbi, &mk, &v, 0)
            }
            try check(rc, "mdb_put")
        }
    }

    /// `mdb_put` of `value` under the raw key bytes `key` in `txn`.
    static func put(_ txn: OpaquePointer, _ dbi: MDB_dbi, rawKey key: inout [UInt8], _ value: RawBytes) throws(RawError) {
        var v = value.val
        let rc = key.withUnsafeMutableBytes { kb -> Int32 in
            var mk = MDB_val(mv_size: kb.count, mv_data: kb.baseAddress)
            return mdb_put(txn, dbi, &mk, &v, 0)
        }
        try check(rc, "mdb_put")
    }

    /// `mdb_del` of each 4-byte big-endian key of `keys`, all in one durable commit.
    func commitDeletes(_ keys: some Sequence<UInt32>, in db: String = "ids") throws {
        let dbi = try dbi(db)
        try write { txn in try Self.delete(txn, dbi, keys) }
    }

    static func delete(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ keys: some Sequence<UInt32>) throws(RawError) {
        for key in keys {
            var k = key.bigEndian
            let rc = withUnsafeMutableBytes(of: &k) { kb -> Int32 in
                var mk = MDB_val(mv_size: 4, mv_data: kb.baseAddress)
                return mdb_del(txn, dbi, &mk, nil)
            }
            try check(rc, "mdb_del")
        }
    }

    /// Fills the database with `value` under each key of `keys`, `perCommit` puts per durable commit.
    func fill(_ keys: [UInt32], value: RawBytes, perCommit: Int = 100_000, in db: String = "ids") throws {
        var start = 0
        while start < keys.count {
            let end = min(keys.count, start + perCommit)
            try commitPuts(keys[start..<end], value: value, in: db)
            start = end
        }
    }

    // MARK: Reads

    /// A read-only transaction handle for `mdb_txn_renew` / `mdb_txn_reset` cycles.
    /// It is returned reset; abort it with `mdb_txn_abort` when done.
    func resetReader() throws -> OpaquePointer {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin(RDONLY)")
        guard let txn else { throw RawError(call: "mdb_txn_begin", code: EINVAL) }
        mdb_txn_reset(txn)
        return txn
    }

    /// `mdb_get` of the 4-byte big-endian `key`; returns the value's length plus its first
    /// byte (so that the lookup and a touch of the value cannot be optimised away), or throws
    /// when the key is missing.
    @inline(__always)
    static func get(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: UInt32) throws(RawError) -> Int {
        var k = key.bigEndian
        var mv = MDB_val()
        let rc = withUnsafeMutableBytes(of: &k) { kb -> Int32 in
            var mk = MDB_val(mv_size: 4, mv_data: kb.baseAddress)
            return mdb_get(txn, dbi, &mk, &mv)
        }
        try check(rc, "mdb_get")
        return mv.mv_size + Int(mv.mv_data.load(as: UInt8.self))
    }

    /// `mdb_get` of an 8-byte key `a ‖ b` (a guest mapping).
    @inline(__always)
    static func get(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ a: UInt32, _ b: UInt32) throws(RawError) -> Int {
        var k = (a.bigEndian, b.bigEndian)
        var mv = MDB_val()
        let rc = withUnsafeMutableBytes(of: &k) { kb -> Int32 in
            var mk = MDB_val(mv_size: 8, mv_data: kb.baseAddress)
            return mdb_get(txn, dbi, &mk, &mv)
        }
        try check(rc, "mdb_get")
        return mv.mv_size + Int(mv.mv_data.load(as: UInt8.self))
    }

    /// Each `(key, value)` in `db` in key order, through `mdb_cursor_get(MDB_FIRST/MDB_NEXT)`
    /// in one read transaction, until `body` returns `false`.
    func scan(_ db: String = "ids", _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        let dbi = try dbi(db)
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin(RDONLY)")
        defer { mdb_txn_abort(txn) }
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var mk = MDB_val(), mv = MDB_val()
        var op = MDB_FIRST
        while true {
            let rc = mdb_cursor_get(cursor, &mk, &mv, op)
            if rc == MDB_NOTFOUND { break }
            try check(rc, "mdb_cursor_get")
            guard try body(UnsafeRawBufferPointer(start: mk.mv_data, count: mk.mv_size), UnsafeRawBufferPointer(start: mv.mv_data, count: mv.mv_size))
            else { break }
            op = MDB_NEXT
        }
    }
}
