import Foundation
import IOASIDMigrations
import LMDB
import Logging
import Synchronization

/// A persistent, crash-consistent IOASID (PCIe PASID / Arm SSID) allocator kept in LMDB.
///
/// ```swift
/// let store = try IOASIDStore(path: "/var/lib/ioasid")
/// let vm = try store.createSet(token: "vm:6f1c…", quota: 1000)
/// let pasid = try store.allocate(in: vm)
/// try store.free(pasid, in: vm)
/// ```
///
/// Every operation is one LMDB write transaction and one durable commit;
/// `write { }` puts many operations into one. The async methods go through a
/// dedicated writer thread that group-commits concurrent callers.
/// Several processes may share one store: LMDB's lock file serialises their writers.
public final class IOASIDStore: Sendable {
    /// The store's directory.
    public let path: String
    let env: Environment
    let schema: Schema
    let logger: Logger
    let writer: GroupCommitWriter
    let changeSignal = ChangeSignal()

    /// Whether this store was opened read-only (see ``Options/readOnly``).
    public let isReadOnly: Bool
    let synchronousWritesThroughWriter: Bool

    /// Opens the store at `path` (a directory), creating it when `options` allow.
    ///
    /// Before LMDB sees the files, they are checked with plain reads
    /// (`StoreFiles`): the directory and files must be this user's and
    /// private, `data.mdb` a regular file whose meta pages are sound and whose
    /// length covers every page they claim. A directory with no store files at
    /// all is *not initialised*; anything else that is wrong is a corrupt store,
    /// named. The schema is checked in a read transaction, and migrations run
    /// only when there are any (and the store may be written). A new store is
    /// built in a private temporary directory beside `path`, synced and renamed
    /// into place, so a crash leaves either no store or a whole one. A
    /// read-only open never writes.
    ///
    /// - Throws: ``IOASIDError`` — `notInitialized`, `alreadyInitialized`,
    ///   `newerSchema`, `corruptStore`, `accessDenied`, `readOnly`, `storageFailure`, `invalidArgument`.
    public convenience init(path: String, options: Options = Options()) throws(IOASIDError) {
        guard !path.isEmpty else { throw IOASIDError(.invalidArgument, "the store path is empty") }
        switch try StoreFiles.inspect(path, forWriting: !options.readOnly) {
        case .valid:
            if options.creation == .createNew { throw IOASIDError(.alreadyInitialized, "a store already exists at \(path)") }
        case .absent:
            guard options.creation != .openExisting, !options.readOnly else {
                throw IOASIDError(.notInitialized, "there is no store at \(path)")
            }
            let created = try StoreFiles.create(at: path) { temporary throws(IOASIDError) in
                try Self.build(at: temporary, options: options)
            }
            if !created, options.creation == .createNew {
                throw IOASIDError(.alreadyInitialized, "a store already exists at \(path)")
            }
            if case .absent = try StoreFiles.inspect(path) {
                throw IOASIDError(.storageFailure, "the store created at \(path) is not there")
            }
        }
        try self.init(opening: path, options: options)
        try adoptHome()
    }

    /// Checks with plain reads (no LMDB, nothing opened) that `path` holds a sound
    /// store this user may write: what `ioasid serve` checks before it runs the service.
    package static func checkFiles(at path: String) throws(IOASIDError) {
        guard !path.isEmpty else { throw IOASIDError(.invalidArgument, "the store path is empty") }
        if case .absent = try StoreFiles.inspect(path, forWriting: true) {
            throw IOASIDError(.notInitialized, "there is no store at \(path)")
        }
    }

    /// Builds a new, initialised store in the (new, empty) directory `temporary`, synced.
    private static func build(at temporary: String, options: Options) throws(IOASIDError) {
        var building = options
        building.readOnly = false
        let store = try IOASIDStore(opening: temporary, options: building, creating: true)
        try store.writeMapped { tx in
            try tx.initialize(
                capacity: options.capacity,
                systemQuota: options.systemQuota,
                maximumDataSize: options.maximumDataSize,
                storeID: Self.randomBytes(16),
                now: Self.nowMillis()
            )
        }
        // Record data.mdb's identity now: the rename keeps its inode, so
        // the first open after `init` has nothing to write.
        try store.adoptHome()
        do { try store.env.sync() } catch { throw IOASIDError.wrapping(error, at: temporary) }
        options.logger.info("initialised store", metadata: ["capacity": "\(options.capacity)"])
    }

    /// Opens the store files at `path` (checked already, or being created).
    private init(opening path: String, options: Options, creating: Bool = false) throws(IOASIDError) {
        self.path = path
        logger = options.logger
        isReadOnly = options.readOnly
        synchronousWritesThroughWriter = options.synchronousWritesThroughWriter && !creating
        var envOptions = Environment.Options()
        envOptions.mapSize = options.mapSize
        envOptions.maxMapSize = max(options.maxMapSize, options.mapSize)
        envOptions.durable = options.durability == .durable
        envOptions.create = creating
        envOptions.readOnly = options.readOnly
        let env: Environment
        do {
            env = try Environment.open(path: path, options: envOptions)
        } catch where error == .noEntry {
            throw IOASIDError(.notInitialized, "there is no store at \(path)", cause: error)
        } catch where !options.readOnly && (error == .accessDenied || error == .readOnlyFileSystem) {
            throw IOASIDError(.readOnly, "the store at \(path) cannot be written (\(error == .accessDenied ? "its files are read-only to this user" : "the file system is read-only")); read commands still work", cause: error)
        } catch {
            throw IOASIDError.wrapping(error, at: path)
        }
        guard env.options.durable == envOptions.durable else {
            throw IOASIDError(
                .invalidArgument,
                "\(path) is already open in this process with \(env.options.durable ? "durable" : "relaxed") commits; open it with the same durability"
            )
        }
        if env.options.readOnly && !options.readOnly {
            throw IOASIDError(.readOnly, "\(path) is already open read-only in this process")
        }
        self.env = env
        let logger = options.logger
        let readOnly = options.readOnly
        schema = try IOASIDError.mapping(at: path) {
            let pending = try Migrator.pendingMigrations(in: env)
            // Every store is built whole before it is renamed into place, so an
            // existing one always has a history: none means LMDB's catalogue of
            // databases is damaged (a wrong page where its root should be), and
            // migrating from nothing would write over the damage.
            if !creating, pending.count == Migrations.all.count {
                throw MigrationError.corruptHistory("the catalogue of databases (LMDB's main database) has no migration history and no meta database")
            }
            if let first = pending.first {
                if readOnly {
                    throw IOASIDError(
                        .readOnly,
                        "the store at \(path) has schema version \(first.number - 1) and needs migrating to \(Migrations.latestVersion), which a read-only open cannot do"
                    )
                }
                for migration in try Migrator.migrate(env, now: { Self.nowMillis() }) {
                    logger.info("applied migration", metadata: ["number": "\(migration.number)", "name": "\(migration.name)"])
                }
            }
            return try Schema(env)
        }
        let schema = schema
        let signal = changeSignal
        writer = GroupCommitWriter(maxBatch: options.maxBatchSize) { body in
            try env.write { txn in
                try TransactionContext.lend(txn, schema: schema) { context in
                    let tx = WriteTransaction(context: context)
                    try body(tx)
                    try tx.prepareCommit()
                }
            }
            signal.notify()
        }
        if !creating {
            let initialized = try IOASIDError.mapping(at: path) {
                try env.read { txn in try txn.get(StoreLayout.MetaKey.capacity, in: schema.meta) != nil }
            }
            guard initialized else {
                throw IOASIDError(.corruptStore, "\(path)/data.mdb is damaged: database meta has no capacity record (every initialised store has one)")
            }
        }
    }

    deinit {
        writer.stop()
        changeSignal.stopWatching()
    }

    /// Calls `body` with the number of operations and the duration of each group
    /// commit of the writer thread (for metrics), on that thread.
    package func observeGroupCommits(_ body: @escaping @Sendable (Int, Duration) -> Void) {
        writer.observe(body)
    }

    /// Starts the cross-process wake-up (an inotify watch of `data.mdb`) used by
    /// event streams; returns whether it runs. Idempotent.
    @discardableResult
    package func watchForCommits() -> Bool {
        changeSignal.watch(path + "/data.mdb")
    }

    /// The wake-up of event streams: a generation that changes after each commit
    /// seen (this instance's, or any process's through ``watchForCommits()``).
    package var commitGeneration: UInt64 { changeSignal.generation }

    /// Waits until ``commitGeneration`` differs from `seen`, or `timeout` passes.
    package func waitForCommit(after seen: UInt64, timeout: Duration) async {
        await changeSignal.wait(after: seen, timeout: timeout)
    }

    // MARK: Transactions

    /// Runs `body` in a read transaction: one consistent snapshot, concurrent with writers.
    ///
    /// The transaction is lent to `body` and cannot leave it. Store errors are
    /// thrown as ``IOASIDError``; errors `body` throws itself pass through.
    ///
    /// - Precondition: not called from inside another `read` or `write` closure
    ///   of this store (use the transaction you were given), nor in a child
    ///   process after `fork()`: both trap.
    public func read<R>(_ body: (borrowing ReadTransaction) throws -> R) throws -> R {
        let schema = schema
        return try storeErrors {
            try env.read { txn in try TransactionContext.lend(txn, schema: schema) { try body(ReadTransaction(context: $0)) } }
        }
    }

    /// Runs `body` in one write transaction and commits it durably: everything
    /// it did happens together or not at all.
    ///
    /// Runs synchronously on the calling thread (and waits for other writers,
    /// including other processes). `body` may run more than once if the map
    /// must grow, so it should have no effects outside the transaction. The
    /// transaction is lent to `body` and cannot leave it. If an operation
    /// inside broke the check-before-write rule, nothing is committed and
    /// ``IOASIDError/Code-swift.struct/internalError`` is thrown.
    /// Store errors are thrown as ``IOASIDError``; errors `body` throws itself pass through.
    ///
    /// - Precondition: not called from inside another `read` or `write` closure
    ///   of this store, nor after `fork()`: both trap.
    @discardableResult
    public func write<R>(_ body: (borrowing WriteTransaction) throws -> R) throws -> R {
        try checkWritable()
        if synchronousWritesThroughWriter {
            return try storeErrors { try writer.submitAndWait(isolated: true, body) }
        }
        let schema = schema
        let result = try storeErrors {
            try env.write { txn in
                try TransactionContext.lend(txn, schema: schema) { context in
                    let tx = WriteTransaction(context: context)
                    let result = try body(tx)
                    try tx.prepareCommit()
                    return result
                }
            }
        }
        changeSignal.notify()
        return result
    }

    /// Runs `body` on the store's writer thread, in the next group commit, and
    /// returns once that commit is durable. `body` runs in a nested transaction:
    /// if it throws, only its own changes are undone.
    @discardableResult
    public func write<R: Sendable>(_ body: @escaping @Sendable (borrowing WriteTransaction) throws -> R) async throws -> R {
        try checkWritable()
        do {
            return try await writer.submit(isolated: true, body)
        } catch {
            throw storeError(error)
        }
    }

    /// The store's writer thread as a task executor, for tasks that spend their time
    /// in the store's async writes.
    ///
    /// A commit resumes each caller it carried. A task that prefers this executor
    /// (`Task(executorPreference:)`, `group.addTask(executorPreference:)`,
    /// `withTaskExecutorPreference(_:operation:)`) is resumed on the writer thread
    /// itself, which runs it before it begins the next transaction: the task's next
    /// operation joins the next group without a hop to the cooperative thread pool and
    /// back. Under steady load from many such tasks, commits stay full and each
    /// operation costs less processor time than from the pool (`docs/benchmarks.md`
    /// measures both beside raw LMDB).
    ///
    /// The tasks run on the writer thread between two commits, never inside a
    /// transaction — and with them their child tasks, which inherit the preference,
    /// and the code of actors without an executor of their own that they call. Every
    /// moment that code takes delays every caller's next commit: prefer this executor
    /// for tasks that do little besides calling the store, and leave long
    /// computations, blocking I/O and waits on other work (another store's writes
    /// among them) to tasks on the default executor. Reads and synchronous
    /// ``write(_:)-9a2ky`` work from such a task; a synchronous write
    /// commits at once, alone, rather than waiting for the thread it runs on.
    ///
    /// A task keeps the executor alive: one that still prefers it after the store is
    /// released runs on the global concurrent executor once the writer thread has ended.
    ///
    /// ```swift
    /// try await withThrowingTaskGroup(of: Void.self) { group in
    ///     for _ in 0..<16 {
    ///         group.addTask(executorPreference: store.writerExecutor) {
    ///             let id = try await store.allocate(in: set)
    ///             try await store.free(id, in: set)
    ///         }
    ///     }
    ///     try await group.waitForAll()
    /// }
    /// ```
    public var writerExecutor: any TaskExecutor { writer }

    /// Whether the calling thread is the store's writer thread (tests).
    package var onWriterThread: Bool { writer.onWriterThread }

    /// Processor time the writer thread has used, `nil` when it does not run or off Linux (tests).
    package var writerThreadCPUTime: Duration? { writer.threadCPUTime }

    /// Runs `body`, throwing store errors as ``IOASIDError``s that name this
    /// store (see ``storeError(_:)``); errors of the caller's own pass through.
    private func storeErrors<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch { throw storeError(error) }
    }

    /// An LMDB error wrapped with the store's path; a corrupt-store error
    /// located in its data file; any other error unchanged.
    private func storeError(_ error: any Error) -> any Error {
        if let error = error as? LMDBError { return IOASIDError.wrapping(error, at: path) }
        if let error = error as? IOASIDError, error.code == .corruptStore { return error.locating(in: path) }
        return error
    }

    /// Submits a store operation (which checks before it writes) to the group-commit writer,
    /// without the nested transaction of ``write(_:)-(WriteTransaction)->R``: the one-call async methods use it.
    package func submit<R: Sendable>(_ body: @escaping @Sendable (borrowing WriteTransaction) throws -> R) async throws(IOASIDError) -> R {
        try checkWritable()
        do { return try await writer.submit(isolated: false, body) } catch { throw IOASIDError.wrapping(error, at: path) }
    }

    /// ``submit(_:)`` with a completion instead of a suspension, for a caller on an event
    /// loop: `completion` runs on the writer's thread once the commit holding `body` is
    /// durable (or failed), so it must hand its work on rather than block.
    package func submit<R: Sendable>(
        _ body: @escaping @Sendable (borrowing WriteTransaction) throws -> R,
        completion: @escaping @Sendable (Result<R, IOASIDError>) -> Void
    ) {
        do { try checkWritable() } catch {
            completion(.failure(error))
            return
        }
        let path = path
        writer.submit(isolated: false, body) { result in completion(result.mapError { IOASIDError.wrapping($0, at: path) }) }
    }

    func readMapped<R>(_ body: (borrowing ReadTransaction) throws -> R) throws(IOASIDError) -> R {
        try IOASIDError.mapping(at: path) { try read(body) }
    }

    func writeMapped<R>(_ body: (borrowing WriteTransaction) throws -> R) throws(IOASIDError) -> R {
        try IOASIDError.mapping(at: path) { try write(body) }
    }

    func checkWritable() throws(IOASIDError) {
        if isReadOnly { throw IOASIDError(.readOnly, "the store at \(path) is open read-only") }
    }

    /// Whether operations that break the check-before-write rule trap in debug
    /// builds (they are always rolled back). Tests that break the rule on
    /// purpose turn this off.
    package static var assertOnBrokenOperations: Bool {
        get { brokenOperationAssertions.load(ordering: .relaxed) }
        set { brokenOperationAssertions.store(newValue, ordering: .relaxed) }
    }
    private static let brokenOperationAssertions = Atomic<Bool>(true)

    // MARK: Helpers

    static func nowMillis() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}
