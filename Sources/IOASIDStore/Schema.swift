import IOASIDMigrations
import LMDB

/// Handles of the store's named databases (created by the migrations in `migrations/`).
struct Schema: Sendable {
    let meta: Database
    let sets: Database
    let tokens: Database
    let ids: Database
    let setIDs: Database
    let free: Database

    init(_ env: Environment) throws {
        meta = try env.openDatabase(named: "meta")
        sets = try env.openDatabase(named: "sets")
        tokens = try env.openDatabase(named: "tokens")
        ids = try env.openDatabase(named: "ids")
        setIDs = try env.openDatabase(named: "set-ids")
        free = try env.openDatabase(named: "free")
    }

    /// Every database, for dumps and verification.
    var all: [Database] { [meta, sets, tokens, ids, setIDs, free] }
}
