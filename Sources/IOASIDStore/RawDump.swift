import LMDB

/// One key/value pair of the store's underlying databases.
package struct RawRecord: Sendable, Hashable {
    /// The key's bytes.
    package let key: [UInt8]
    /// The value's bytes.
    package let value: [UInt8]
}

extension IOASIDStore {
    /// Every record of every database of the store, by database name, in key order.
    ///
    /// For diagnostics and tests ("a refused operation changed nothing" is
    /// `rawDump()` before == after). Reads one consistent snapshot.
    package func rawDump() throws(IOASIDError) -> [String: [RawRecord]] {
        let databases = schema.all
        return try readMapped { tx in
            var result: [String: [RawRecord]] = [:]
            for db in databases {
                result[db.name] = try tx.txn.withCursor(on: db) { cursor in
                    var records: [RawRecord] = []
                    var entry = try cursor.first()
                    while let e = entry {
                        records.append(RawRecord(key: e.key, value: e.value))
                        entry = try cursor.next()
                    }
                    return records
                }
            }
            return result
        }
    }
}
