import IOASIDMigrations
import LMDB

/// Handles of the store's named databases (created by the migrations in
/// `migrations/`; their layout is ``StoreLayout``).
struct Schema: Sendable {
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
        func open(_ db: StoreLayout.DB) throws -> Database { try env.openDatabase(named: db.rawValue) }
        meta = try open(.meta)
        control = try open(.control)
        tokens = try open(.tokens)
        ids = try open(.ids)
        events = try open(.events)
        subscribers = try open(.subscribers)
        holds = try open(.holds)
        pending = try open(.pending)
        guests = try open(.guests)
        imports = try open(.imports)
    }

    /// Every sealed database, for dumps and verification.
    var all: [Database] { [meta, control, tokens, ids, events, subscribers, holds, pending, guests, imports] }
}
