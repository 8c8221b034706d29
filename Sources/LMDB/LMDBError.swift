internal import CLMDB
internal import CLMDBSupport

/// An error reported by LMDB or by the operating system beneath it.
///
/// Like swift-system's `Errno`, this is a thin wrapper around the raw code:
/// LMDB's own `MDB_*` codes are negative, `errno` values are positive.
public struct LMDBError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The raw LMDB (`MDB_*`) or `errno` code.
    public let code: Int32

    /// Creates an error from a raw LMDB or `errno` code.
    public init(code: Int32) { self.code = code }

    /// The human-readable text LMDB (or the C library) gives for this code,
    /// without the symbolic name LMDB's own texts start with (``name`` has it).
    public var message: String {
        if code == CLMDB_FAULT { return "reading the file hit damage (a bad page made LMDB fault or fail its own check)" }
        let text = String(cString: mdb_strerror(code))
        let prefix = name + ": "
        return text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
    }

    /// A stable, symbolic name for the code (for example `MDB_MAP_FULL` or `ENOSPC`).
    public var name: String {
        switch code {
        case MDB_KEYEXIST: "MDB_KEYEXIST"
        case MDB_NOTFOUND: "MDB_NOTFOUND"
        case MDB_PAGE_NOTFOUND: "MDB_PAGE_NOTFOUND"
        case MDB_CORRUPTED: "MDB_CORRUPTED"
        case MDB_PANIC: "MDB_PANIC"
        case MDB_VERSION_MISMATCH: "MDB_VERSION_MISMATCH"
        case MDB_INVALID: "MDB_INVALID"
        case MDB_MAP_FULL: "MDB_MAP_FULL"
        case MDB_DBS_FULL: "MDB_DBS_FULL"
        case MDB_READERS_FULL: "MDB_READERS_FULL"
        case MDB_TLS_FULL: "MDB_TLS_FULL"
        case MDB_TXN_FULL: "MDB_TXN_FULL"
        case MDB_CURSOR_FULL: "MDB_CURSOR_FULL"
        case MDB_PAGE_FULL: "MDB_PAGE_FULL"
        case MDB_MAP_RESIZED: "MDB_MAP_RESIZED"
        case MDB_INCOMPATIBLE: "MDB_INCOMPATIBLE"
        case MDB_BAD_RSLOT: "MDB_BAD_RSLOT"
        case MDB_BAD_TXN: "MDB_BAD_TXN"
        case MDB_BAD_VALSIZE: "MDB_BAD_VALSIZE"
        case MDB_BAD_DBI: "MDB_BAD_DBI"
        case CLMDB_FAULT: "MDB_FAULT"
        case Self.noSpace.code: "ENOSPC"
        case Self.io.code: "EIO"
        case Self.accessDenied.code: "EACCES"
        case Self.noEntry.code: "ENOENT"
        case Self.invalidArgument.code: "EINVAL"
        case Self.busy.code: "EBUSY"
        case Self.readOnlyFileSystem.code: "EROFS"
        case Self.brokenPipe.code: "EPIPE"
        case Self.exists.code: "EEXIST"
        case 20: "ENOTDIR"
        case 21: "EISDIR"
        case 40: "ELOOP"
        case 1: "EPERM"
        default: "errno \(code)"
        }
    }

    /// `name: message`.
    public var description: String { "\(name): \(message)" }

    /// `MDB_KEYEXIST`: the key/data pair already exists.
    public static let keyExists = LMDBError(code: MDB_KEYEXIST)
    /// `MDB_NOTFOUND`: no matching key/data pair.
    public static let notFound = LMDBError(code: MDB_NOTFOUND)
    /// `MDB_CORRUPTED`: located page was the wrong type.
    public static let corrupted = LMDBError(code: MDB_CORRUPTED)
    /// `MDB_PANIC`: update of meta page failed or environment had a fatal error.
    public static let panic = LMDBError(code: MDB_PANIC)
    /// `MDB_VERSION_MISMATCH`: environment version mismatch.
    public static let versionMismatch = LMDBError(code: MDB_VERSION_MISMATCH)
    /// `MDB_INVALID`: the file is not a valid LMDB file.
    public static let invalidFile = LMDBError(code: MDB_INVALID)
    /// `MDB_MAP_FULL`: the environment's map size was reached.
    public static let mapFull = LMDBError(code: MDB_MAP_FULL)
    /// `MDB_DBS_FULL`: the environment's maximum number of named databases was reached.
    public static let databasesFull = LMDBError(code: MDB_DBS_FULL)
    /// `MDB_READERS_FULL`: the environment's reader table is full.
    public static let readersFull = LMDBError(code: MDB_READERS_FULL)
    /// `MDB_TXN_FULL`: the transaction has too many dirty pages.
    public static let transactionFull = LMDBError(code: MDB_TXN_FULL)
    /// `MDB_MAP_RESIZED`: another process grew the map beyond this one's size.
    public static let mapResized = LMDBError(code: MDB_MAP_RESIZED)
    /// `MDB_INCOMPATIBLE`: the operation is incompatible with the database flags.
    public static let incompatible = LMDBError(code: MDB_INCOMPATIBLE)
    /// `MDB_CURSOR_FULL`: a cursor stack overflowed (a B-tree deeper than LMDB allows).
    public static let cursorFull = LMDBError(code: MDB_CURSOR_FULL)
    /// `MDB_BAD_TXN`: the transaction must abort, has a child, or is invalid.
    public static let badTransaction = LMDBError(code: MDB_BAD_TXN)
    /// `MDB_BAD_VALSIZE`: unsupported size of key, DB name or data.
    public static let badValueSize = LMDBError(code: MDB_BAD_VALSIZE)
    /// `ENOSPC`: the device is full.
    public static let noSpace = LMDBError(code: 28)
    /// `EIO`: an input/output error.
    public static let io = LMDBError(code: 5)
    /// `EACCES`: permission denied.
    public static let accessDenied = LMDBError(code: 13)
    /// `ENOENT`: no such file or directory.
    public static let noEntry = LMDBError(code: 2)
    /// `EINVAL`: invalid argument.
    public static let invalidArgument = LMDBError(code: 22)
    /// A call into LMDB faulted (SIGSEGV/SIGBUS) or failed one of LMDB's own
    /// assertions on a damaged page, and was stopped before it could kill the
    /// process. The environment refuses every later transaction.
    public static let fault = LMDBError(code: CLMDB_FAULT)
    /// `EROFS`: the file system is mounted read-only.
    public static let readOnlyFileSystem = LMDBError(code: 30)
    /// `EPIPE`: the reader of a pipe went away.
    public static let brokenPipe = LMDBError(code: 32)
    /// `EEXIST`: the file exists.
    public static let exists = LMDBError(code: 17)
    /// `EBUSY`: the resource is busy.
    public static let busy = LMDBError(code: 16)

    /// Whether the file itself cannot be trusted (corrupt, invalid or a version
    /// LMDB does not understand), as opposed to a transient condition.
    public var isStoreUnusable: Bool {
        [Self.corrupted, .panic, .versionMismatch, .invalidFile, .incompatible, .fault].contains(self)
            || code == MDB_PAGE_NOTFOUND
    }

    /// Whether, coming out of a call the caller made correctly, only a damaged
    /// file explains the code: a B-tree deeper than LMDB allows
    /// (`MDB_CURSOR_FULL`), a transaction LMDB marked failed behind an earlier
    /// bad page (`MDB_BAD_TXN`), or a key or database a consistent tree holds
    /// reported missing (`MDB_NOTFOUND` escaping a lookup that handles absence).
    /// Callers that can misuse the API (a stale transaction) should not use it.
    public var isDamageSymptom: Bool {
        isStoreUnusable || [Self.cursorFull, .badTransaction, .notFound].contains(self)
    }

    /// Throws an ``LMDBError`` for a non-zero return code.
    @inline(__always)
    static func check(_ rc: Int32) throws(LMDBError) {
        if rc != 0 { throw LMDBError(code: rc) }
    }
}
