public import LMDB

/// Why a store's schema could not be brought up to date.
public enum MigrationError: Error, Sendable, Equatable {
    /// The store records a migration this code does not know: it was written by a newer version.
    case newerSchema(storeVersion: UInt32, supportedVersion: UInt32)
    /// The store's migration records are unreadable or have gaps.
    case corruptHistory(String)
}

/// Applies pending migrations to an environment, like GRDB's `DatabaseMigrator`.
///
/// The history lives in the named database `migrations`: key = the migration
/// number (UInt32, big-endian), value = an 8-byte big-endian Unix time in
/// milliseconds followed by the UTF-8 name.
public enum Migrator {
    /// The name of the database that records applied migrations.
    public static let historyDatabaseName = "migrations"

    /// The numbers of the migrations the store has applied, in order (empty for a new store).
    public static func appliedVersions(in env: Environment) throws -> [UInt32] {
        let history = try env.openDatabase(named: historyDatabaseName, create: true)
        return try env.read { txn in try recordedVersions(txn, history) }
    }

    /// Checks the history and applies every pending migration, each in its own
    /// write transaction together with its record.
    ///
    /// - Returns: the migrations applied by this call.
    /// - Throws: ``MigrationError`` for a newer or damaged history; ``LMDBError`` from storage.
    @discardableResult
    public static func migrate(_ env: Environment, migrations: [Migration] = Migrations.all, now: () -> UInt64) throws -> [Migration] {
        let history = try env.openDatabase(named: historyDatabaseName, create: true)
        let known = migrations.map(\.number)
        let supported = known.last ?? 0
        var applied: [Migration] = []
        for migration in migrations {
            let ran = try env.write { txn -> Bool in
                // Read the history inside the write transaction: another process may
                // be migrating at the same time, and LMDB's write lock orders us.
                let versions = try recordedVersions(txn, history)
                if let newest = versions.last, newest > supported {
                    throw MigrationError.newerSchema(storeVersion: newest, supportedVersion: supported)
                }
                guard versions == Array(known.prefix(versions.count)) else {
                    throw MigrationError.corruptHistory("recorded \(versions), expected a prefix of \(known)")
                }
                if versions.contains(migration.number) { return false }
                try migration.apply(txn)
                var value = withUnsafeBytes(of: now().bigEndian) { [UInt8]($0) }
                value += Array(migration.name.utf8)
                try txn.put(value, forKey: withUnsafeBytes(of: migration.number.bigEndian) { [UInt8]($0) }, in: history)
                return true
            }
            if ran { applied.append(migration) }
        }
        // A store with no migrations to run may still be newer than this code.
        if applied.isEmpty {
            let versions = try appliedVersions(in: env)
            if let newest = versions.last, newest > supported {
                throw MigrationError.newerSchema(storeVersion: newest, supportedVersion: supported)
            }
        }
        return applied
    }

    private static func recordedVersions(_ txn: borrowing Transaction, _ history: Database) throws -> [UInt32] {
        try txn.withCursor(on: history) { cursor in
            var versions: [UInt32] = []
            var entry = try cursor.first()
            while let e = entry {
                guard e.key.count == 4 else { throw MigrationError.corruptHistory("bad key length \(e.key.count)") }
                versions.append(e.key.withUnsafeBytes { UInt32(bigEndian: $0.loadUnaligned(as: UInt32.self)) })
                entry = try cursor.next()
            }
            return versions
        }
    }
}
