internal import CLMDB
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// An open LMDB environment: one directory holding `data.mdb` and `lock.mdb`.
///
/// Follows LMDB's rules for safe use from Swift concurrency:
/// - opened with `MDB_NOTLS`, so read transactions are not tied to a thread;
/// - one environment per path per process: ``open(path:options:)`` hands back
///   the instance that is already open for the same path;
/// - stale reader slots of killed processes are cleared at open (`mdb_reader_check`);
/// - a brand-new environment is synced (`mdb_env_sync(env, 1)`) before open returns;
/// - `MDB_MAP_FULL` grows the map and reruns the write; `MDB_MAP_RESIZED`
///   (another process grew it) adopts the new size and retries.
///
/// Transactions are only reachable inside ``read(_:)`` and ``write(_:)``, so
/// none outlives its closure and none is held across `await`.
public final class Environment: @unchecked Sendable {
    /// How to open an environment.
    public struct Options: Sendable {
        /// Initial map size in bytes. The file grows only as pages are used.
        public var mapSize: Int = 1 << 30
        /// The map never grows beyond this; a write that needs more fails with `MDB_MAP_FULL`.
        public var maxMapSize: Int = 1 << 40
        /// Maximum number of named databases.
        public var maxDatabases: Int = 32
        /// Maximum number of concurrent read transactions across all processes.
        public var maxReaders: Int = 126
        /// `true` (the default) syncs every commit to disk. `false` opens with
        /// `MDB_NOSYNC`: a commit may be lost on power failure (never corrupting
        /// the file, but losing the last transactions).
        public var durable: Bool = true
        /// Create the directory and files when missing.
        public var create: Bool = true
        /// Permission bits for the files LMDB creates (owner read/write by default).
        public var fileMode: UInt32 = 0o600
        /// Test hook: open with `MDB_RDONLY` (no write transaction can begin).
        package var readOnly: Bool = false

        /// Default options: 1 GiB initial map, durable commits.
        public init() {}
    }

    /// The directory of the environment.
    public let path: String
    /// Whether this open created the data file.
    public let wasCreated: Bool
    /// The options the environment was opened with (by whoever opened it first in this process).
    public let options: Options
    /// The registry key: the canonical path.
    private let key: String

    let handle: OpaquePointer
    let resizeLock = ReadWriteLock()
    private let state = Locked(State())

    private let databases = Locked([String: Database]())

    private struct State {
        var idleReaders: [IdleReader] = []
    }

    // MARK: Opening

    private static let registry = Locked([String: WeakEnvironment]())

    /// Opens the environment at `path`, or returns the one this process already has open there.
    ///
    /// - Throws: ``LMDBError`` (`ENOENT` when it does not exist and `create` is false).
    public static func open(path: String, options: Options = Options()) throws(LMDBError) -> Environment {
        // Create the directory first, so that the key is the canonical path of a real directory.
        if options.create, mkdir(path, 0o700) != 0, errno != EEXIST { throw LMDBError(code: errno) }
        let key = canonicalPath(path)
        while true {
            let result = registry.withLock { table -> Result<Environment, LMDBError>? in
                if let entry = table[key] {
                    if let env = entry.value { return .success(env) }
                    return nil  // being closed right now: wait for its deinit
                }
                let opened = Result { () throws(LMDBError) -> Environment in
                    try Environment(path: path, key: key, options: options)
                }
                if case .success(let env) = opened { table[key] = WeakEnvironment(env) }
                return opened
            }
            if let result { return try result.get() }
            sched_yield()
        }
    }

    private init(path: String, key: String, options: Options) throws(LMDBError) {
        self.path = path
        self.key = key
        self.options = options
        var st = stat()
        if stat(path, &st) != 0 { throw LMDBError(code: errno) }
        wasCreated = access(path + "/data.mdb", F_OK) != 0
        if wasCreated && !options.create { throw LMDBError.noEntry }

        var env: OpaquePointer?
        try LMDBError.check(mdb_env_create(&env))
        guard let env else { throw LMDBError.invalidArgument }
        do {
            try LMDBError.check(mdb_env_set_maxdbs(env, MDB_dbi(options.maxDatabases)))
            try LMDBError.check(mdb_env_set_maxreaders(env, UInt32(options.maxReaders)))
            try LMDBError.check(mdb_env_set_mapsize(env, options.mapSize))
            var flags = UInt32(MDB_NOTLS)
            if !options.durable { flags |= UInt32(MDB_NOSYNC) }
            if options.readOnly { flags |= UInt32(MDB_RDONLY) }
            try LMDBError.check(mdb_env_open(env, path, flags, mdb_mode_t(options.fileMode)))
            var dead: Int32 = 0
            try LMDBError.check(mdb_reader_check(env, &dead))
            if wasCreated { try LMDBError.check(mdb_env_sync(env, 1)) }
        } catch {
            mdb_env_close(env)
            throw error
        }
        handle = env
    }

    deinit {
        Self.registry.withLock { table in
            state.withLock { s in
                for idle in s.idleReaders { mdb_txn_abort(idle.txn) }
                s.idleReaders.removeAll()
            }
            mdb_env_close(handle)
            if let entry = table[key], entry.value == nil || entry.value === self {
                table[key] = nil
            }
        }
    }

    private static func canonicalPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    // MARK: Transactions

    /// Runs `body` in a read-only transaction that sees one consistent snapshot.
    ///
    /// Read transactions are pooled (`mdb_txn_reset`/`mdb_txn_renew`), so a
    /// short read costs little more than the lookups it makes.
    @discardableResult
    public func read<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        var clearedReaders = false
        while true {
            do {
                return try resizeLock.withReadLock { () throws -> R in
                    let txn = try acquireReader()
                    defer { releaseReader(txn) }
                    return try body(Transaction(handle: txn, environment: self, isReadOnly: true))
                }
            } catch let error as LMDBError where error == .mapResized {
                try adoptGrownMap()
            } catch let error as LMDBError where error == .readersFull && !clearedReaders {
                // Slots of killed readers count against the table until cleared.
                clearedReaders = true
                try clearStaleReaders()
            }
        }
    }

    /// Runs `body` in a write transaction and commits it (durably, unless the
    /// environment was opened with `durable: false`).
    ///
    /// When `body` throws, the transaction is aborted and nothing it wrote remains.
    /// When the map is full, the transaction is aborted, the map doubled and
    /// `body` run again from the start, so `body` must not have side effects
    /// outside the transaction. Do not call ``write(_:)`` or ``read(_:)`` from
    /// inside `body`: use the transaction you were given.
    @discardableResult
    public func write<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        while true {
            do {
                return try resizeLock.withReadLock { () throws -> R in
                    var raw: OpaquePointer?
                    try LMDBError.check(FaultInjection.call(.beginWrite, path) { mdb_txn_begin(handle, nil, 0, &raw) })
                    guard let raw else { throw LMDBError.invalidArgument }
                    let result: R
                    do {
                        result = try body(Transaction(handle: raw, environment: self, isReadOnly: false))
                    } catch {
                        mdb_txn_abort(raw)
                        throw error
                    }
                    // mdb_txn_commit frees the transaction whether or not it succeeds; an
                    // injected failure aborts it the same way.
                    try LMDBError.check(FaultInjection.call(.commit, path, onInject: { mdb_txn_abort(raw) }) { mdb_txn_commit(raw) })
                    return result
                }
            } catch let error as LMDBError where error == .mapResized {
                try adoptGrownMap()
            } catch let error as LMDBError where error == .mapFull {
                try growMap()
            }
        }
    }

    private func acquireReader() throws(LMDBError) -> OpaquePointer {
        if let idle = state.withLock({ $0.idleReaders.popLast() })?.txn {
            let rc = mdb_txn_renew(idle)
            if rc == 0 { return idle }
            mdb_txn_abort(idle)
            throw LMDBError(code: rc)
        }
        var raw: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &raw))
        guard let raw else { throw LMDBError.invalidArgument }
        return raw
    }

    private func releaseReader(_ txn: OpaquePointer) {
        mdb_txn_reset(txn)
        let kept = state.withLock { s -> Bool in
            guard s.idleReaders.count < 8 else { return false }
            s.idleReaders.append(IdleReader(txn: txn))
            return true
        }
        if !kept { mdb_txn_abort(txn) }
    }

    // MARK: Map size

    /// The current size of the memory map in bytes.
    public var mapSize: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_mapsize
    }

    private func growMap() throws(LMDBError) {
        try resizeLock.withWriteLock { () throws(LMDBError) in
            let current = mapSize
            guard current < options.maxMapSize else { throw LMDBError.mapFull }
            let next = min(current * 2, options.maxMapSize)
            try LMDBError.check(mdb_env_set_mapsize(handle, next))
        }
    }

    private func adoptGrownMap() throws(LMDBError) {
        try resizeLock.withWriteLock { () throws(LMDBError) in
            try LMDBError.check(mdb_env_set_mapsize(handle, 0))
        }
    }

    // MARK: Databases

    /// Opens (and with `create`, creates) the named database, caching its handle.
    ///
    /// Call this while setting up, not from inside another transaction:
    /// LMDB allows only one transaction at a time to open database handles.
    public func openDatabase(named name: String, create: Bool = false) throws(LMDBError) -> Database {
        let result = databases.withLock { cache -> Result<Database, LMDBError> in
            if let db = cache[name] { return .success(db) }
            let opened = resizeLock.withReadLock { rawOpenDatabase(named: name, create: create) }
            if case .success(let db) = opened { cache[name] = db }
            return opened
        }
        return try result.get()
    }

    private func rawOpenDatabase(named name: String, create: Bool) -> Result<Database, LMDBError> {
        var raw: OpaquePointer?
        var rc = mdb_txn_begin(handle, nil, create ? 0 : UInt32(MDB_RDONLY), &raw)
        guard rc == 0, let raw else { return .failure(LMDBError(code: rc)) }
        var dbi = MDB_dbi()
        rc = mdb_dbi_open(raw, name, create ? UInt32(MDB_CREATE) : 0, &dbi)
        if rc != 0 {
            mdb_txn_abort(raw)
            return .failure(LMDBError(code: rc))
        }
        rc = mdb_txn_commit(raw)
        return rc == 0 ? .success(Database(dbi: dbi, name: name)) : .failure(LMDBError(code: rc))
    }

    // MARK: Maintenance

    /// Clears reader slots left by processes that died; returns how many were cleared.
    @discardableResult
    public func clearStaleReaders() throws(LMDBError) -> Int {
        var dead: Int32 = 0
        try LMDBError.check(mdb_reader_check(handle, &dead))
        return Int(dead)
    }

    /// Copies a consistent snapshot of the environment into the directory `destination`
    /// (which must exist and be empty), optionally compacting it.
    public func copy(to destination: String, compact: Bool = false) throws(LMDBError) {
        try LMDBError.check(mdb_env_copy2(handle, destination, compact ? UInt32(MDB_CP_COMPACT) : 0))
    }
}

/// A reset read transaction kept for reuse; `MDB_NOTLS` lets any thread renew it.
private struct IdleReader: @unchecked Sendable {
    let txn: OpaquePointer
}

private struct WeakEnvironment {
    weak var value: Environment?
    init(_ value: Environment) { self.value = value }
}
