import LMDB

/// Migration 1: the first schema (core store: capacity, sets, IDs, free index).
///
/// Databases (keys are big-endian so cursor order is numeric order):
/// - `meta`: store-wide values by ASCII name (`capacity`, `reserved`, `next-set-id`, `store-id`, `created-at`).
/// - `sets`: set id (UInt32) → set record.
/// - `tokens`: owner token (UTF-8) → set id, for live sets only.
/// - `ids`: IOASID (UInt32) → ID record (owning set, state, private data).
/// - `set-ids`: set id ‖ IOASID → empty; a set's IDs in order.
/// - `free`: first ID of a free extent → last ID of it (inclusive).
///
/// Landed: never edit. Change the schema with a new migration.
let migration0001InitialSchema = Migration(number: 1, name: "initial-schema") { txn in
    for name in ["meta", "sets", "tokens", "ids", "set-ids", "free"] {
        try txn.createDatabase(named: name)
    }
}
