internal import CLMDB
internal import CLMDBSupport
internal import Synchronization
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
/// Transactions are only reachable inside ``read(_:)`` and ``write(_:)``, which
/// lend a `~Copyable` ``Transaction`` that cannot outlive its closure; no
/// transaction is held across `await`. Misuse traps with a message instead of
/// deadlocking or touching freed memory:
/// - starting a transaction inside a ``read(_:)`` or ``write(_:)`` closure of the
///   same environment on the same thread (LMDB would wait forever for the write
///   lock, or for the map to be free to grow);
/// - using an environment in a child process after `fork()` (its memory map,
///   locks and reader slots belong to the parent). A child that opens the same
///   path gets a new environment of its own.
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
        /// Create the directory and files when missing (ignored when ``readOnly``).
        public var create: Bool = true
        /// Open with `MDB_RDONLY`: nothing is ever written to `data.mdb`, write
        /// transactions fail with `EACCES`, and a missing file is not created.
        /// On a read-only file system, or when `lock.mdb` cannot be opened for
        /// writing, the environment is opened without the lock file (`MDB_NOLOCK`):
        /// then no other process can be writing it either.
        public var readOnly: Bool = false
        /// Permission bits for the files LMDB creates (owner read/write by default).
        public var fileMode: UInt32 = 0o600

        /// Default options: 1 GiB initial map, durable commits.
        public init() {}
    }

    /// The directory of the environment.
    public let path: String
    /// The options the environment was opened with (by whoever opened it first in this process).
    public let options: Options
    /// Whether the environment runs without `lock.mdb` (read-only media or files).
    public let isLockless: Bool
    /// Whether this open created the data file.
    package let wasCreated: Bool
    /// The registry key: the canonical path.
    private let key: String
    /// The fork generation of the process that opened it.
    private let generation: Int

    let handle: OpaquePointer
    let resizeLock = ReadWriteLock()
    /// Set once a call hit damage (``LMDBError/fault``): LMDB's state may be
    /// inconsistent, so no transaction is begun again.
    private let faulted = Atomic<Bool>(false)
    /// Reader slots, each keeping a reset read transaction for reuse (`nil` if their memory
    /// could not be had: then every read begins its own transaction under ``resizeLock``).
    private let readers = clmdb_reader_pool_create()
    private let databases = Locked([String: Database]())

    // MARK: Opening

    private static let registry = Locked([String: WeakEnvironment]())

    /// Opens the environment at `path`, or returns the one this process already has open there.
    ///
    /// - Throws: ``LMDBError`` (`ENOENT` when it does not exist and `create` is false).
    public static func open(path: String, options: Options = Options()) throws(LMDBError) -> Environment {
        // Create the directory first, so that the key is the canonical path of a real directory.
        if options.create, !options.readOnly, mkdir(path, 0o700) != 0, errno != EEXIST { throw LMDBError(code: errno) }
        let key = canonicalPath(path)
        let generation = ForkGeneration.current
        while true {
            let result = registry.withLock { table -> Result<Environment, LMDBError>? in
                // An entry made before a fork() belongs to the parent: never hand it out.
                if let entry = table[key], entry.generation == generation {
                    if let env = entry.value { return .success(env) }
                    return nil  // being closed right now: wait for its deinit
                }
                let opened = Result { () throws(LMDBError) -> Environment in
                    try Environment(path: path, key: key, options: options, generation: generation)
                }
                if case .success(let env) = opened { table[key] = WeakEnvironment(env, generation: generation) }
                return opened
            }
            if let result { return try result.get() }
            sched_yield()
        }
    }

    /// Whether this process has the environment at `path` open (``open(path:options:)``), or
    /// is closing it right now.
    public static func isOpen(at path: String) -> Bool {
        let key = canonicalPath(path)
        let generation = ForkGeneration.current
        return registry.withLock { $0[key]?.generation == generation }
    }

    private init(path: String, key: String, options: Options, generation: Int) throws(LMDBError) {
        self.path = path
        self.key = key
        self.options = options
        self.generation = generation
        var st = stat()
        if stat(path, &st) != 0 { throw LMDBError(code: errno) }
        wasCreated = access(path + "/data.mdb", F_OK) != 0
        if wasCreated && (!options.create || options.readOnly) { throw LMDBError.noEntry }

        var flags = UInt32(MDB_NOTLS)
        if !options.durable { flags |= UInt32(MDB_NOSYNC) }
        if options.readOnly { flags |= UInt32(MDB_RDONLY) }
        var result = Self.create(path: path, options: options, flags: flags, created: wasCreated)
        var lockless = false
        if options.readOnly, case .failure(let error) = result, error == .accessDenied || error == .readOnlyFileSystem {
            // 0400 files or a read-only mount: nobody can be writing, so no lock file is needed.
            result = Self.create(path: path, options: options, flags: flags | UInt32(MDB_NOLOCK), created: false)
            lockless = true
        }
        handle = try result.get()
        isLockless = lockless
    }

    private static func create(path: String, options: Options, flags: UInt32, created: Bool) -> Result<OpaquePointer, LMDBError> {
        var env: OpaquePointer?
        let rc = mdb_env_create(&env)
        guard rc == 0, let env else { return .failure(LMDBError(code: rc == 0 ? LMDBError.invalidArgument.code : rc)) }
        clmdb_install_fault_handlers()
        _ = clmdb_set_assert(env)
        do {
            try LMDBError.check(mdb_env_set_maxdbs(env, MDB_dbi(options.maxDatabases)))
            try LMDBError.check(mdb_env_set_maxreaders(env, UInt32(options.maxReaders)))
            try LMDBError.check(mdb_env_set_mapsize(env, options.mapSize))
            try LMDBError.check(mdb_env_open(env, path, flags, mdb_mode_t(options.fileMode)))
            if flags & UInt32(MDB_NOLOCK) == 0 {
                var dead: Int32 = 0
                try LMDBError.check(mdb_reader_check(env, &dead))
            }
            // A brand-new environment's meta pages are written without a sync.
            if created { try LMDBError.check(mdb_env_sync(env, 1)) }
            return .success(env)
        } catch {
            mdb_env_close(env)
            return .failure(error)
        }
    }

    deinit {
        // After fork(), the map, locks and reader slots belong to the parent:
        // closing them here would release the parent's reader slots. Leak them.
        guard generation == ForkGeneration.current else { return }
        Self.registry.withLock { table in
            clmdb_reader_pool_destroy(readers)
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
    ///
    /// - Precondition: not called inside another ``read(_:)`` or ``write(_:)``
    ///   closure of this environment on this thread, and not after `fork()`.
    // Inlinable over non-generic halves (``beginRead()``, ``endRead(_:)``), so a
    // caller's `body` and result are specialised: no closure context, no value
    // witness calls for `R`.
    @inlinable
    @discardableResult
    public func read<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        let lease = try beginRead()
        defer { endRead(lease) }
        guard let txn = lease.transaction else { return try readWithoutSlot(body) }
        do {
            return try body(Transaction(handle: txn, environment: self, writes: nil))
        } catch let error as LMDBError where error == .fault {
            noteFault()
            throw error
        }
    }

    /// A read begun by ``beginRead()``: the transaction in a reader slot, or none
    /// when every slot was taken (the read then begins one of its own; slot -1).
    @usableFromInline
    struct ReadLease {
        @usableFromInline let transaction: OpaquePointer?
        let slot: Int32
        let marked: Int32
    }

    /// Marks this thread as in a transaction of this environment and takes a reader
    /// slot, renewing its transaction (one C call): adopts a map another process grew
    /// and clears stale readers when the reader table is full, then tries again.
    @usableFromInline
    func beginRead() throws(LMDBError) -> ReadLease {
        let owner = Unmanaged.passUnretained(self).toOpaque()
        var clearedReaders = false
        while true {
            try checkNotFaulted()
            var raw: OpaquePointer?
            var slot: Int32 = -1
            var marked: Int32 = 0
            let rc = clmdb_read_begin(readers, handle, owner, UInt(bitPattern: generation), &raw, &slot, &marked)
            if rc == 0 {
                if let raw { return ReadLease(transaction: raw, slot: slot, marked: marked) }
                // Not reached (a slot taken always holds a transaction); give back what was taken.
                _ = clmdb_read_end(readers, owner, slot, 1, marked)
                throw LMDBError.invalidArgument
            }
            if rc == CLMDB_NO_SLOT { return ReadLease(transaction: nil, slot: -1, marked: marked) }
            if rc == CLMDB_FORKED { usedAfterFork() }
            if rc == CLMDB_NESTED { nestedTransaction() }
            // Not begun: the slot, if any, was given back and the mark taken off.
            try recoverFromRefusedBegin(LMDBError(code: rc), clearedReaders: &clearedReaders)
        }
    }

    /// What a read does when its transaction could not begin: adopts a map another
    /// process grew, or clears stale readers once when the reader table is full, and
    /// returns to try again; throws anything else (after noting a fault).
    private func recoverFromRefusedBegin(_ error: LMDBError, clearedReaders: inout Bool) throws(LMDBError) {
        if error == .mapResized {
            try adoptGrownMap()
        } else if error == .readersFull && !clearedReaders {
            // Slots of killed readers count against the table until cleared.
            clearedReaders = true
            try clearStaleReaders()
        } else {
            if error == .fault { noteFault() }
            throw error
        }
    }

    /// Ends a read begun by ``beginRead()``: resets the slot's transaction for reuse (or
    /// aborts it once the environment has faulted), frees the slot and the thread's mark.
    @usableFromInline
    func endRead(_ lease: ReadLease) {
        let discard: Int32 = faulted.load(ordering: .relaxed) ? 1 : 0
        if clmdb_read_end(readers, Unmanaged.passUnretained(self).toOpaque(), lease.slot, discard, lease.marked) == CLMDB_FAULT {
            noteFault()
        }
    }

    /// Records that a call hit damage: no transaction is begun again.
    @usableFromInline
    func noteFault() {
        faulted.store(true, ordering: .sequentiallyConsistent)
    }

    /// Runs `body` in a write transaction and commits it (durably, unless the
    /// environment was opened with `durable: false`).
    ///
    /// When `body` throws, the transaction is aborted and nothing it wrote remains.
    /// When the map is full, the transaction is aborted, the map doubled and
    /// `body` run again from the start, so `body` must not have side effects
    /// outside the transaction.
    ///
    /// - Precondition: not called inside another ``read(_:)`` or ``write(_:)``
    ///   closure of this environment on this thread, and not after `fork()`.
    @discardableResult
    public func write<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        let mark = TransactionMark(self)
        defer { mark.end() }
        try checkNotFaulted()
        while true {
            do {
                return try resizeLock.withReadLock { () throws -> R in
                    var raw: OpaquePointer?
                    try LMDBError.check(FaultInjection.call(.beginWrite, path) { clmdb_txn_begin(handle, nil, 0, &raw) })
                    guard let raw else { throw LMDBError.invalidArgument }
                    let result: R
                    do {
                        result = try body(Transaction(handle: raw, environment: self, writes: WriteCounter()))
                    } catch let error as LMDBError where error == .fault {
                        throw error  // LMDB's state is unknown: leak the transaction rather than touch it
                    } catch {
                        _ = clmdb_txn_abort(raw)
                        throw error
                    }
                    // mdb_txn_commit frees the transaction whether or not it succeeds; an
                    // injected failure aborts it the same way.
                    try LMDBError.check(FaultInjection.call(.commit, path, onInject: { _ = clmdb_txn_abort(raw) }) { clmdb_txn_commit(raw) })
                    return result
                }
            } catch let error as LMDBError where error == .mapResized {
                try adoptGrownMap()
            } catch let error as LMDBError where error == .mapFull {
                try growMap()
            } catch let error as LMDBError where error == .fault {
                faulted.store(true, ordering: .sequentiallyConsistent)
                throw error
            }
        }
    }

    /// Refuses a transaction once a call has hit damage.
    private func checkNotFaulted() throws(LMDBError) {
        if faulted.load(ordering: .relaxed) { throw LMDBError.fault }
    }

    /// Traps unless this environment may start a transaction on this thread now.
    fileprivate func checkUsable() {
        if generation != ForkGeneration.current { usedAfterFork() }
    }

    fileprivate func usedAfterFork() -> Never {
        preconditionFailure(
            "LMDB environment \(path) was opened before fork() and used in the child process; open the store again in the child"
        )
    }

    fileprivate func nestedTransaction() -> Never {
        preconditionFailure(
            "nested transaction on LMDB environment \(path): read or write was called inside a read or write closure of the same store on this thread; use the transaction you were given"
        )
    }

    /// A read when every reader slot is taken: a transaction of its own, begun and
    /// aborted under the resize lock (which a slot stands in for). Retries its begin
    /// as ``beginRead()`` does; `body` runs once.
    @usableFromInline
    func readWithoutSlot<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        var clearedReaders = false
        while true {
            var refused: LMDBError?
            let result = try resizeLock.withReadLock { () throws -> R? in
                var raw: OpaquePointer?
                let rc = clmdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &raw)
                guard rc == 0, let txn = raw else {
                    refused = LMDBError(code: rc == 0 ? LMDBError.invalidArgument.code : rc)
                    return nil
                }
                defer { _ = clmdb_txn_abort(txn) }
                do {
                    return .some(try body(Transaction(handle: txn, environment: self, writes: nil)))
                } catch let error as LMDBError where error == .fault {
                    noteFault()
                    throw error
                }
            }
            if let result { return result }
            try recoverFromRefusedBegin(refused ?? .invalidArgument, clearedReaders: &clearedReaders)
        }
    }

    /// Runs `body` (which changes the map) with no transaction of this process active:
    /// writers and slotless readers held off by the resize lock, readers by their slots.
    private func withMapExclusive<R>(_ body: () throws(LMDBError) -> R) throws(LMDBError) -> R {
        try resizeLock.withWriteLock { () throws(LMDBError) -> R in
            clmdb_reader_pool_block(readers)
            defer { clmdb_reader_pool_unblock(readers) }
            return try body()
        }
    }

    // MARK: Map size

    /// The current size of the memory map in bytes.
    public var mapSize: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_mapsize
    }

    private func growMap() throws(LMDBError) {
        try withMapExclusive { () throws(LMDBError) in
            let current = mapSize
            guard current < options.maxMapSize else { throw LMDBError.mapFull }
            let next = min(current * 2, options.maxMapSize)
            try LMDBError.check(mdb_env_set_mapsize(handle, next))
        }
    }

    private func adoptGrownMap() throws(LMDBError) {
        try withMapExclusive { () throws(LMDBError) in
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
        var rc = clmdb_txn_begin(handle, nil, create ? 0 : UInt32(MDB_RDONLY), &raw)
        guard rc == 0, let raw else { return .failure(LMDBError(code: rc)) }
        var dbi = MDB_dbi()
        rc = clmdb_dbi_open(raw, name, create ? UInt32(MDB_CREATE) : 0, &dbi)
        if rc != 0 {
            _ = clmdb_txn_abort(raw)
            return .failure(LMDBError(code: rc))
        }
        rc = clmdb_txn_commit(raw)
        return rc == 0 ? .success(Database(dbi: dbi, name: name)) : .failure(LMDBError(code: rc))
    }

    // MARK: Maintenance

    /// Flushes everything committed to the device (`mdb_env_sync(env, 1)`),
    /// even in an environment opened with `durable: false`.
    public func sync() throws(LMDBError) {
        try LMDBError.check(mdb_env_sync(handle, 1))
    }

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
        try withMapSteady { () throws(LMDBError) in
            try LMDBError.check(clmdb_env_copy2(handle, destination, compact ? UInt32(MDB_CP_COMPACT) : 0))
        }
    }

    /// Runs `body`, which reads through a transaction of LMDB's own (a copy), with map
    /// changes kept out: under the resize lock, shared — unless this thread is inside a
    /// transaction of this environment, which keeps them out already (and a resize
    /// waiting for that transaction would hold the lock against this thread for ever).
    func withMapSteady<R>(_ body: () throws(LMDBError) -> R) throws(LMDBError) -> R {
        if clmdb_mark_held(Unmanaged.passUnretained(self).toOpaque()) != 0 { return try body() }
        return try resizeLock.withReadLock(body)
    }
}

private struct WeakEnvironment {
    weak var value: Environment?
    let generation: Int
    init(_ value: Environment, generation: Int) {
        self.value = value
        self.generation = generation
    }
}

/// Counts the `fork()`s this process has gone through (its children see a
/// higher number than the parent had), so an environment opened before a fork
/// is recognised in the child.
enum ForkGeneration {
    static var current: Int { Int(truncatingIfNeeded: clmdb_fork_generation()) }
}

/// Marks, per thread, the environments that have a transaction open, so that a
/// nested `read`/`write` on the same environment traps instead of deadlocking.
/// (The marks are a thread-local table in the C support file: no lock, no
/// allocation. Beyond 32 environments with a transaction open on one thread,
/// a further one is not marked, so nesting on it is not caught.) Writes mark
/// with this; a read marks in the same C call that takes its reader slot.
struct TransactionMark {
    private let environment: UnsafeMutableRawPointer
    private let marked: Bool

    init(_ env: Environment) {
        env.checkUsable()
        environment = Unmanaged.passUnretained(env).toOpaque()
        switch clmdb_mark_enter(environment) {
        case 0:
            marked = true
        case 1:
            env.nestedTransaction()
        default:
            marked = false
        }
    }

    func end() {
        if marked { clmdb_mark_exit(environment) }
    }
}
