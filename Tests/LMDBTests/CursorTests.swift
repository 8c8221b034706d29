import LMDB
import Testing

@Suite("LMDB cursors and sealed records")
struct CursorTests {
    @Test("A cursor walks forwards and backwards, replaces and deletes in place, and reads entries without copies")
    func walkReplaceDelete() throws {
        try withEnvironment { env, db in
            try env.write { txn in
                let readOnly = txn.isReadOnly
                #expect(!readOnly)
                for i in UInt32(1)...5 { try txn.put(sealed: [UInt8(i), 0xEE], forKey: key(i), in: db) }
            }
            let walked = try env.read { txn -> [UInt32] in
                let readOnly = txn.isReadOnly
                #expect(readOnly)
                return try txn.withCursor(on: db) { cursor in
                    var keys: [UInt32] = []
                    guard let first = try cursor.withFirst({ $0.keyU32() }) else { return [] }
                    keys.append(try #require(first))
                    while let next = try cursor.withNext({ (entry: borrowing CursorEntry) throws -> UInt32? in
                        let sizes = (entry.keyCount, entry.valueCount)
                        #expect(sizes == (4, 2 + Sealing.trailerSize))
                        let id = entry.keyU32() ?? 0
                        let equal = entry.keyEquals(key(id))
                        #expect(equal)
                        var reader = entry.reader()
                        let first = try reader.u8()
                        #expect(first == UInt8(id))
                        return id
                    }) {
                        keys.append(try #require(next))
                    }
                    #expect(try cursor.withPrevious { $0.keyU32() } == 4)
                    #expect(try cursor.withLast { $0.keyU32() } == 5)
                    return keys
                }
            }
            #expect(walked == [1, 2, 3, 4, 5])

            try env.write { txn in
                try txn.withCursor(on: db) { cursor in
                    _ = try cursor.withEntry(atOrAfter: key(3)) { _ in }
                    try cursor.replaceCurrent(sealed: [0x33], key: key(3))
                    _ = try cursor.withEntry(atOrAfter: key(4)) { _ in }
                    try cursor.deleteCurrent()
                }
                let writes = txn.writeCount
                #expect(writes == 2)  // this transaction: one replace, one delete
            }
            let (three, four, count) = try env.read { txn in
                (
                    try txn.withSealedValue(forKey: key(3), in: db) { try $0.u8() },
                    try txn.withSealedValue(forKey: UInt32(4), in: db) { try $0.u8() },
                    try txn.count(of: db)
                )
            }
            #expect(three == 0x33 && four == nil && count == 4)
        }
    }

    @Test("A sealed value read under another key, or with a changed byte, is a DamagedRecord naming both")
    func damagedRecord() throws {
        try withEnvironment { env, db in
            try env.write { txn in
                try txn.put(sealed: [1, 2, 3], forKey: key(1), in: db)
                let sealed = try #require(try txn.get(key(1), in: db))
                try txn.put(sealed, forKey: key(2), in: db)  // the right bytes under the wrong key
                var flipped = sealed
                flipped[0] ^= 0x01
                try txn.put(flipped, forKey: key(3), in: db)
                try txn.put([9], forKey: key(4), in: db)  // shorter than a seal
            }
            for (k, raw) in [(UInt32(2), false), (3, false), (4, false), (3, true)] {
                do {
                    _ = try env.read { txn in
                        raw
                            ? try key(k).withUnsafeBytes { try txn.withSealedValue(rawKey: $0, in: db) { _ in 0 } }
                            : try txn.withSealedValue(forKey: k, in: db) { _ in 0 }
                    }
                    Issue.record("key \(k) read as sound")
                } catch let error as DamagedRecord {
                    #expect(error.key == key(k) && error.database == "test")
                    #expect(error.description.contains("fails its checksum") && error.description.contains("test"))
                }
            }
        }
    }
}
