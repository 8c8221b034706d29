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
    ///
    /// Reads in a read transaction: works on a read-only environment.
    public static func appliedVersions(in env: Environment) throws -> [UInt32] {
        try appliedRecords(in: env).map(\.number)
    }

    /// The store's history records (number and recorded name), in order.
    private static func appliedRecords(in env: Environment) throws -> [(number: UInt32, name: String?)] {
        guard let history = try historyDatabase(env, create: false) else { return [] }
        return try env.read { txn in try recordedHistory(txn, history) }
    }

    /// The migrations the store still needs, checked in a read transaction
    /// (nothing is written, so this works on read-only media).
    ///
    /// - Throws: ``MigrationError`` for a newer or damaged history; ``LMDBError`` from storage.
    public static func pendingMigrations(in env: Environment, migrations: [Migration] = Migrations.all) throws -> [Migration] {
        let records = try appliedRecords(in: env)
        let versions = records.map(\.number)
        try check(records, against: migrations)
        if versions.isEmpty, try databaseExists("meta", in: env) {
            // A new store has no databases at all: data without a history is damage, not an old schema.
            throw MigrationError.corruptHistory("the store has databases but no migration history")
        }
        return migrations.filter { !versions.contains($0.number) }
    }

    /// Checks the history and applies every pending migration, each in its own
    /// write transaction together with its record. A store that needs none is
    /// only read: no write transaction is begun.
    ///
    /// - Returns: the migrations applied by this call.
    /// - Throws: ``MigrationError`` for a newer or damaged history; ``LMDBError`` from storage.
    @discardableResult
    public static func migrate(_ env: Environment, migrations: [Migration] = Migrations.all, now: () -> UInt64) throws -> [Migration] {
        guard try !pendingMigrations(in: env, migrations: migrations).isEmpty else { return [] }
        guard let history = try historyDatabase(env, create: true) else { return [] }
        var applied: [Migration] = []
        for migration in migrations {
            let ran = try env.write { txn -> Bool in
                // Read the history inside the write transaction: another process may
                // be migrating at the same time, and LMDB's write lock orders us.
                let records = try recordedHistory(txn, history)
                let versions = records.map(\.number)
                try check(records, against: migrations)
                if versions.contains(migration.number) { return false }
                try migration.apply(txn)
                let value = StoreLayout.migrationValue(appliedAt: now(), name: migration.name)
                try txn.put(value, forKey: StoreLayout.migrationKey(migration.number), in: history)
                return true
            }
            if ran { applied.append(migration) }
        }
        return applied
    }

    /// Refuses a history that is newer than `migrations` or not a prefix of them,
    /// or that records a known migration under another name (a damaged tree can
    /// point the history at another database's page, whose keys read as numbers).
    private static func check(_ records: [(number: UInt32, name: String?)], against migrations: [Migration]) throws {
        for record in records {
            guard let migration = migrations.first(where: { $0.number == record.number }) else { continue }
            guard record.name == migration.name else {
                throw MigrationError.corruptHistory("migration \(record.number)'s record does not name it \"\(migration.name)\"")
            }
        }
        let versions = records.map(\.number)
        let known = migrations.map(\.number)
        let supported = known.last ?? 0
        if let newest = versions.last, newest > supported {
            // A newer version's history is still 1, 2, …, newest: anything else is damage.
            guard versions == Array(1...newest) else {
                throw MigrationError.corruptHistory("recorded \(versions): not a contiguous history from 1")
            }
            throw MigrationError.newerSchema(storeVersion: newest, supportedVersion: supported)
        }
        guard versions == Array(known.prefix(versions.count)) else {
            throw MigrationError.corruptHistory("recorded \(versions), expected a prefix of \(known)")
        }
    }

    private static func databaseExists(_ name: String, in env: Environment) throws -> Bool {
        let result = Result { () throws(LMDBError) -> Database in try env.openDatabase(named: name, create: false) }
        if case .failure(let error) = result, error == .notFound { return false }
        _ = try result.get()
        return true
    }

    /// The history database, or `nil` when it does not exist and `create` is false.
    private static func historyDatabase(_ env: Environment, create: Bool) throws -> Database? {
        let result = Result { () throws(LMDBError) -> Database in
            try env.openDatabase(named: historyDatabaseName, create: create)
        }
        if case .failure(let error) = result, error == .notFound, !create { return nil }
        return try result.get()
    }

    /// Each record: the number (its key) and the name after the 8-byte time (`nil` when the value is too short or not UTF-8).
    private static func recordedHistory(_ txn: borrowing Transaction, _ history: Database) throws -> [(number: UInt32, name: String?)] {
        try txn.withCursor(on: history) { cursor in
            var records: [(number: UInt32, name: String?)] = []
            var entry = try cursor.first()
            while let e = entry {
                guard let version = StoreLayout.decodeMigrationKey(e.key) else {
                    throw MigrationError.corruptHistory("bad key length \(e.key.count)")
                }
                records.append((version, StoreLayout.decodeMigrationName(e.value)))
                entry = try cursor.next()
            }
            return records
        }
    }
}
