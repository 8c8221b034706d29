import LMDB

/// Migration 5: consumers and owners that go away.
///
/// - Subscriber records gain (version 2) a kind (gating or observer), a state
///   (active or lapsed), lag limits and the subscribers they run after.
/// - Set records gain (version 2) a lease and an owning process.
/// - Event records gain (version 2) the store epoch, a capacity, a subscriber
///   name and store-wide events without a set.
/// - `meta` gains `epoch` (1 here).
///
/// Records of version 1 keep their meaning (an active gating subscriber
/// without limits; a set without lease or owner; an event of epoch 1) and are
/// rewritten as version 2 when they next change, so this migration only
/// records the epoch; its number tells older software that the store is newer.
/// Landed: never edit.
let migration0005ConsumersAndOwners = Migration(number: 5, name: "consumers-and-owners") { txn in
    let meta = try txn.openDatabase(named: "meta")
    let key = Array("epoch".utf8)
    let value: [UInt8] = [0, 0, 0, 1]
    let crc = Checksum.crc32c(key + value)
    let sealed = value + [UInt8(truncatingIfNeeded: crc >> 24), UInt8(truncatingIfNeeded: crc >> 16),
                          UInt8(truncatingIfNeeded: crc >> 8), UInt8(truncatingIfNeeded: crc)]
    try txn.put(sealed, forKey: key, in: meta, overwrite: false)
}
