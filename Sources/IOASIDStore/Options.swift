public import Logging

extension IOASIDStore {
    /// Whether an open may create a store.
    public enum Creation: Sendable {
        /// Open an initialised store; fail with ``IOASIDError/Code-swift.struct/notInitialized`` when there is none.
        case openExisting
        /// Open the store, creating and initialising it when there is none (the default).
        case openOrCreate
        /// Create and initialise a new store; fail with ``IOASIDError/Code-swift.struct/alreadyInitialized`` when one exists.
        case createNew
    }

    /// How commits reach the disk.
    public enum Durability: Sendable {
        /// Every commit is flushed to disk before it returns (the default).
        /// An operation that returned success survives any crash or power cut.
        case durable
        /// Commits are not flushed (`MDB_NOSYNC`): much faster, and a crash of the
        /// process loses nothing, but a power cut or kernel crash may lose the
        /// most recent commits (LMDB keeps the file consistent as long as the file
        /// system preserves the order of writes). Opt in explicitly,
        /// for example for throwaway or test stores.
        case relaxed
    }

    /// How to open a store.
    public struct Options: Sendable {
        /// Whether the open may create the store.
        public var creation: Creation = .openOrCreate
        /// Capacity of a newly created store: IDs 1 … capacity − 1. Default 2^20 (20-bit PASIDs).
        public var capacity: UInt32 = 1 << 20
        /// Quota of the system set of a newly created store. Default 32768 (`PID_MAX_DEFAULT`).
        public var systemQuota: UInt32 = 32768
        /// The most bytes of private data an ID of a newly created store may
        /// carry (default 4096, at most ``IOASIDStore/largestDataSizeLimit``).
        /// Kept in the store; larger data is refused with ``IOASIDError/Code-swift.struct/invalidArgument``.
        public var maximumDataSize: UInt32 = UInt32(IOASIDStore.defaultMaximumDataSize)
        /// How commits reach the disk. Default ``Durability/durable``.
        public var durability: Durability = .durable
        /// Initial LMDB map size in bytes; the map grows on demand.
        public var mapSize: Int = 1 << 30
        /// Upper bound for map growth, in bytes.
        public var maxMapSize: Int = 1 << 40
        /// The most operations the writer puts into one group commit.
        public var maxBatchSize: Int = 512
        /// Open the store read-only: nothing is ever written (the environment is
        /// opened with `MDB_RDONLY`, the schema is checked in a read transaction),
        /// so it works on read-only media, with read-only files and alongside a
        /// long write by another process. Writes fail with ``IOASIDError/Code-swift.struct/readOnly``;
        /// a store that needs a migration cannot be opened this way.
        public var readOnly: Bool = false
        /// Whether the synchronous ``IOASIDStore/write(_:)-(WriteTransaction)->R`` runs on
        /// the group-commit writer thread (the caller's thread blocks until its commit is
        /// durable) instead of on the caller's thread: `ioasid serve` sets it, so commands
        /// it runs for clients share group commits with its async requests.
        package var synchronousWritesThroughWriter: Bool = false
        /// Where the store logs (opens, migrations, map growth). Logs nothing by default.
        public var logger: Logger = Logger(label: "ioasid.store", factory: { _ in SwiftLogNoOpLogHandler() })

        /// Default options: open or create, durable, capacity 2^20, system quota 32768.
        public init() {}
    }
}
