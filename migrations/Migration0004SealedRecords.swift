import LMDB

/// Migration 4: every record carries a checksum, and free extents are keyed by
/// their last ID.
///
/// - Every value of `meta`, `control`, `tokens`, `ids`, `events`, `subscribers`,
///   `holds`, `pending`, `guests` and `imports` gets a 4-byte big-endian
///   CRC32C of its key followed by its value appended (a *sealed* record), so
///   that a damaged or misplaced value is detected when it is read.
/// - A free extent `first…last` in `control` moves from key `0x02 ‖ first`
///   (value `last`) to key `0x02 ‖ last` (value `first`): taking the lowest
///   free ID then updates the extent's value in place instead of deleting and
///   re-inserting it, and the lowest free ID at or above `n` is one seek.
///
/// Rewrites every record in the one write transaction that records the
/// migration. Landed: never edit. (Its checksum and key encodings are written
/// out here on purpose, so that later layout changes cannot alter what it does.)
let migration0004SealedRecords = Migration(number: 4, name: "sealed-records-extents-by-last") { txn in
    func seal(_ payload: [UInt8], key: [UInt8]) -> [UInt8] {
        let crc = Checksum.crc32c(key + payload)
        return payload + [UInt8(truncatingIfNeeded: crc >> 24), UInt8(truncatingIfNeeded: crc >> 16),
                          UInt8(truncatingIfNeeded: crc >> 8), UInt8(truncatingIfNeeded: crc)]
    }
    let databases = ["meta", "control", "tokens", "ids", "events", "subscribers", "holds", "pending", "guests", "imports"]
    for name in databases {
        let db = try txn.openDatabase(named: name)
        var extents: [(first: [UInt8], last: [UInt8])] = []
        try txn.withCursor(on: db) { cursor in
            try cursor.forEach { entry in
                let key = entry.keyBytes()
                let value = entry.valueBytes()
                if name == "control", key.first == 0x02 {
                    guard key.count == 5, value.count == 4 else { throw LMDBError.corrupted }
                    extents.append((Array(key[1...]), value))
                } else {
                    try cursor.replaceCurrent(seal(value, key: key), key: key)
                }
                return true
            }
        }
        for extent in extents { try txn.delete([0x02] + extent.first, in: db) }
        for extent in extents {
            let key = [0x02] + extent.last
            try txn.put(seal(extent.first, key: key), forKey: key, in: db)
        }
    }
}
