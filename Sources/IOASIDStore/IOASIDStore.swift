import Foundation
import IOASIDMigrations
import LMDB
import Logging

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

    /// Opens the store at `path` (a directory), creating it when `options` allow.
    ///
    /// Applies pending schema migrations. A new store is synced to disk before this returns.
    ///
    /// - Throws: ``IOASIDError`` — `notInitialized`, `alreadyInitialized`,
    ///   `newerSchema`, `corruptStore`, `accessDenied`, `storageFailure`.
    public init(path: String, options: Options = Options()) throws(IOASIDError) {
        self.path = path
        logger = options.logger
        var envOptions = Environment.Options()
        envOptions.mapSize = options.mapSize
        envOptions.maxMapSize = max(options.maxMapSize, options.mapSize)
        envOptions.durable = options.durability == .durable
        envOptions.create = options.creation != .openExisting
        try Self.checkAccess(path)
        let env: Environment
        do {
            env = try Environment.open(path: path, options: envOptions)
        } catch where error == .noEntry {
            throw IOASIDError(.notInitialized, "no store at \(path); run `ioasid init`", cause: error)
        } catch {
            throw IOASIDError.wrapping(error)
        }
        guard env.options.durable == envOptions.durable else {
            throw IOASIDError(
                .invalidArgument,
                "\(path) is already open in this process with \(env.options.durable ? "durable" : "relaxed") commits; open it with the same durability"
            )
        }
        self.env = env
        let logger = options.logger
        schema = try IOASIDError.mapping {
            let applied = try Migrator.migrate(env, now: { Self.nowMillis() })
            for migration in applied {
                logger.info("applied migration", metadata: ["number": "\(migration.number)", "name": "\(migration.name)"])
            }
            return try Schema(env)
        }
        let schema = schema
        let signal = changeSignal
        writer = GroupCommitWriter(maxBatch: options.maxBatchSize) { body in
            try env.write { txn in try body(WriteTransaction(context: TransactionContext(txn: txn, schema: schema))) }
            signal.notify()
        }
        let initialized = try IOASIDError.mapping {
            try env.read { txn in try txn.get(MetaKey.capacity, in: schema.meta) != nil }
        }
        switch (options.creation, initialized) {
        case (.openExisting, false):
            throw IOASIDError(.notInitialized, "the store at \(path) is not initialised; run `ioasid init`")
        case (.createNew, true):
            throw IOASIDError(.alreadyInitialized, "a store already exists at \(path)")
        case (_, false):
            try writeMapped { tx in
                // Another process may have initialised it meanwhile; the write lock orders us.
                if try tx.txn.get(MetaKey.capacity, in: schema.meta) != nil {
                    if options.creation == .createNew {
                        throw IOASIDError(.alreadyInitialized, "a store already exists at \(path)")
                    }
                    return
                }
                try tx.initialize(
                    capacity: options.capacity,
                    systemQuota: options.systemQuota,
                    storeID: Self.randomBytes(16),
                    now: Self.nowMillis()
                )
            }
            logger.info("initialised store", metadata: ["path": "\(path)", "capacity": "\(options.capacity)"])
        default:
            break
        }
    }

    deinit { writer.stop() }

    // MARK: Transactions

    /// Runs `body` in a read transaction: one consistent snapshot, concurrent with writers.
    ///
    /// Store errors are thrown as ``IOASIDError``; errors `body` throws itself pass through.
    public func read<R>(_ body: (ReadTransaction) throws -> R) throws -> R {
        let schema = schema
        do {
            return try env.read { txn in try body(ReadTransaction(context: TransactionContext(txn: txn, schema: schema))) }
        } catch let error as LMDBError {
            throw IOASIDError.wrapping(error)
        }
    }

    /// Runs `body` in one write transaction and commits it durably: everything
    /// it did happens together or not at all.
    ///
    /// Runs synchronously on the calling thread (and waits for other writers,
    /// including other processes). `body` may run more than once if the map
    /// must grow, so it should have no effects outside the transaction. Never
    /// call ``read(_:)`` or `write(_:)` from inside `body`.
    /// Store errors are thrown as ``IOASIDError``; errors `body` throws itself pass through.
    @discardableResult
    public func write<R>(_ body: (WriteTransaction) throws -> R) throws -> R {
        let schema = schema
        do {
            let result = try env.write { txn in try body(WriteTransaction(context: TransactionContext(txn: txn, schema: schema))) }
            changeSignal.notify()
            return result
        } catch let error as LMDBError {
            throw IOASIDError.wrapping(error)
        }
    }

    /// Runs `body` on the store's writer thread, in the next group commit, and
    /// returns once that commit is durable. `body` runs in a nested transaction:
    /// if it throws, only its own changes are undone.
    @discardableResult
    public func write<R: Sendable>(_ body: @escaping @Sendable (WriteTransaction) throws -> R) async throws -> R {
        do {
            return try await writer.submit(isolated: true, body)
        } catch let error as LMDBError {
            throw IOASIDError.wrapping(error)
        }
    }

    /// Submits a store operation (which checks before it writes) to the group-commit writer.
    func submit<R: Sendable>(_ body: @escaping @Sendable (WriteTransaction) throws -> R) async throws(IOASIDError) -> R {
        do { return try await writer.submit(isolated: false, body) } catch { throw IOASIDError.wrapping(error) }
    }

    func readMapped<R>(_ body: (ReadTransaction) throws -> R) throws(IOASIDError) -> R {
        try IOASIDError.mapping { try read(body) }
    }

    func writeMapped<R>(_ body: (WriteTransaction) throws -> R) throws(IOASIDError) -> R {
        try IOASIDError.mapping { try write(body) }
    }

    // MARK: Helpers

    /// Refuses a store that another user could write: its directory and files
    /// must belong to this user and be writable by nobody else (the store
    /// creates them that way: directory 0700, files 0600).
    static func checkAccess(_ path: String) throws(IOASIDError) {
        for file in [path, path + "/data.mdb", path + "/lock.mdb"] {
            var st = stat()
            guard stat(file, &st) == 0 else { continue }
            if st.st_uid != geteuid() {
                throw IOASIDError(.accessDenied, "\(file) belongs to user \(st.st_uid), not to this user (\(geteuid()))")
            }
            if st.st_mode & 0o022 != 0 {
                throw IOASIDError(
                    .accessDenied,
                    "\(file) is writable by other users (mode \(String(st.st_mode & 0o777, radix: 8))); run chmod go-w on it"
                )
            }
        }
    }

    static func nowMillis() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}
