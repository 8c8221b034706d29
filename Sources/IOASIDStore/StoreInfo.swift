import IOASIDMigrations
import LMDB

/// Facts about a store that do not change with its contents: its identity,
/// schema version and limits. Read by `ioasid status` and support tools.
public struct StoreInfo: Sendable, Equatable, Codable {
    /// The 16 random bytes chosen when the store was initialised, in hex (the
    /// `sourceStore` of the store's exports).
    public let storeID: String
    /// The store's epoch: 1 from initialisation; a new, larger one each time
    /// a copy of it (a restored backup) is first opened for writing (see
    /// ``IOASIDReading/epoch()``).
    public let epoch: UInt32
    /// The schema version the store is at (the number of its last applied migration).
    public let schemaVersion: UInt32
    /// When the store was initialised, in milliseconds since 1970 (`nil` when not recorded).
    public let createdAt: UInt64?
    /// The most bytes of private data an ID may carry.
    public let maximumDataSize: Int
}

extension IOASIDStore {
    /// The schema version this software writes (and the newest it reads).
    public static var schemaVersion: UInt32 { Migrations.latestVersion }

    /// The store's identity, schema version and limits, read in one snapshot
    /// (the schema version from the migration history).
    ///
    /// - Throws: ``IOASIDError`` — `corruptStore` for a damaged record, `storageFailure`.
    public func info() throws(IOASIDError) -> StoreInfo {
        let versions = try IOASIDError.mapping { try Migrator.appliedVersions(in: env) }
        return try readMapped { tx in
            StoreInfo(
                storeID: try tx.storeID(),
                epoch: try tx.epoch(),
                schemaVersion: versions.max() ?? 0,
                createdAt: try tx.metaU64(StoreLayout.MetaKey.createdAt),
                maximumDataSize: try tx.maximumDataSize()
            )
        }
    }
}
