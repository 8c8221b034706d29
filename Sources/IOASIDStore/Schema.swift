import IOASIDMigrations
import LMDB

/// Handles of the store's named databases (created by the migrations in `migrations/`).
final class Schema: Sendable {
    let meta: Database
    let control: Database
    let tokens: Database
    let ids: Database
    let events: Database
    let subscribers: Database
    let holds: Database
    let pending: Database
    let guests: Database
    let imports: Database

    init(_ env: Environment) throws {
        meta = try env.openDatabase(named: "meta")
        control = try env.openDatabase(named: "control")
        tokens = try env.openDatabase(named: "tokens")
        ids = try env.openDatabase(named: "ids")
        events = try env.openDatabase(named: "events")
        subscribers = try env.openDatabase(named: "subscribers")
        holds = try env.openDatabase(named: "holds")
        pending = try env.openDatabase(named: "pending")
        guests = try env.openDatabase(named: "guests")
        imports = try env.openDatabase(named: "imports")
    }

    /// Every database, for dumps and verification.
    var all: [Database] { [meta, control, tokens, ids, events, subscribers, holds, pending, guests, imports] }
}
