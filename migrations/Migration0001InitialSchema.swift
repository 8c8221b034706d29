import LMDB

/// Migration 1: the first schema (core store: capacity, sets, IDs, free index).
///
/// Databases (integers in keys are big-endian, so cursor order is numeric order):
/// - `meta`: store-wide values by ASCII name (`capacity`, `reserved`, `next-set-id`, `store-id`, `created-at`).
/// - `control`: the records every allocation touches, kept together so that an
///   allocation dirties few pages: `0x01 ‖ set id` → set record, then
///   `0x02 ‖ first free ID` → last free ID of that extent (the free index).
/// - `tokens`: owner token (UTF-8) → set id, for live sets only.
/// - `ids`: IOASID → ID record (owning set, state, guest ID, private data).
///
/// Landed: never edit. Change the schema with a new migration.
let migration0001InitialSchema = Migration(number: 1, name: "initial-schema") { txn in
    for name in ["meta", "control", "tokens", "ids"] {
        try txn.createDatabase(named: name)
    }
}
