import LMDB

/// Migration 3: guest ID mappings and the record of imported exports.
///
/// New databases:
/// - `guests`: set id ‖ guest ID (both UInt32) → host IOASID. One-to-one inside
///   a set; the host side is also kept in the ID record's guest field.
/// - `imports`: export id (16 bytes) → set id (UInt32) ‖ import time (UInt64 ms),
///   so that importing the same export twice is refused.
///
/// Existing records are unchanged. Landed: never edit.
let migration0003GuestIDsAndImports = Migration(number: 3, name: "guest-ids-and-imports") { txn in
    for name in ["guests", "imports"] {
        try txn.createDatabase(named: name)
    }
}
