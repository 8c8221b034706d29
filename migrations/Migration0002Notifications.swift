import LMDB

/// Migration 2: the write-ahead outbox, durable subscribers, holds and free-pending IDs.
///
/// New databases:
/// - `events`: sequence number (UInt64) → event record. Appended in the same
///   write transaction as the change it describes; deleted once every
///   subscriber interested in it has acknowledged it.
/// - `subscribers`: name (UTF-8) → subscriber record (filter, acknowledged-through sequence).
/// - `holds`: IOASID ‖ holder name (UTF-8) → empty. A held ID is not reclaimed.
/// - `pending`: IOASID → sequence number of its FREE event (0 when none was
///   recorded) for every free-pending ID.
///
/// Existing records are unchanged. Landed: never edit.
let migration0002Notifications = Migration(number: 2, name: "outbox-subscribers-holds") { txn in
    for name in ["events", "subscribers", "holds", "pending"] {
        try txn.createDatabase(named: name)
    }
}
