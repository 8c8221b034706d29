import IOASIDMigrations
import LMDB

/// Handles of the store's named databases (created by the migrations in `migrations/`).
struct Schema: Sendable {
    let meta: Database
    let control: Database
    let tokens: Database
    let ids: Database

    init(_ env: Environment) throws {
        meta = try env.openDatabase(named: "meta")
        control = try env.openDatabase(named: "control")
        tokens = try env.openDatabase(named: "tokens")
        ids = try env.openDatabase(named: "ids")
    }

    /// Every database, for dumps and verification.
    var all: [Database] { [meta, control, tokens, ids] }
}
