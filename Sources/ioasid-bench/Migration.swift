// Export and import of a 1,000,000-ID set through the `ioasid` binary (process start
// included), beside a raw C cursor scan writing one line per record plus one fsync,
// and 1,000,000 raw C puts in one durable commit; free-set of 100,000 IDs beside a
// raw delete of 100,000 keys in one commit.

import CLMDB
import Foundation
import IOASIDStore

extension Bench {
    func migration() throws {
        let count: UInt32 = options.quick ? 200_000 : 1_000_000
        let rounds = options.quick ? 1 : 5
        let cli = try cliBinary()
        let errors = fresh("stderr") + ".txt"
        let data: [UInt8] = [0xab, 0xcd]

        // The source store: one set of `count` IDs, each with a guest ID and 2 bytes of data
        // (a 17-byte record, 21 with its seal). Closed before the CLI runs.
        let source = fresh("store-export")
        let setID: SetID
        do {
            let store = try IOASIDStore(path: source, options: storeOptions(capacity: 1 << 21))
            let set = try store.createSet(token: "vm:big", quota: count)
            var made: UInt32 = 0
            while made < count {
                let batch = min(100_000, count - made)
                try store.write { tx in for g in made..<made + batch { _ = try tx.allocate(in: set, data: data, guest: g + 1) } }
                made += batch
            }
            setID = set
        }

        var storeExport: [Double] = [], storeImport: [Double] = [], rawExport: [Double] = [], rawImport: [Double] = []
        var exportBytes = 0, rawBytes = 0
        for round in 0..<rounds {
            // Raw import first (it builds the B-tree the raw export scans).
            let rawPath = fresh("raw-import"), destination = fresh("store-import")
            defer { for path in [rawPath, destination] { try? FileManager.default.removeItem(atPath: path) } }
            let raw = try RawEnvironment(path: rawPath, mapSize: 1 << 30)
            let rawFile = fresh("raw-export") + ".jsonl"
            let file = fresh("export") + ".jsonl"
            try alternate(round) {
                rawImport.append(try time { try rawPutAll(raw, count: count, set: setID.rawValue, data: data) })
                rawExport.append(try time { rawBytes = try rawScanToFile(raw, rawFile) })
            } _: {
                storeExport.append(try runTimed([cli, "migrate", "export", "--store", source, "--set", "\(setID.rawValue)", "--out", file],
                                                errorFile: errors))
                _ = try runTimed([cli, "migrate", "abort", "--store", source, "\(setID.rawValue)"], errorFile: errors)
                exportBytes = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
                _ = try IOASIDStore(path: destination, options: storeOptions(capacity: 1 << 21))
                storeImport.append(try runTimed([cli, "migrate", "import", "--store", destination, file], errorFile: errors))
                let imported = try IOASIDStore(path: destination, options: storeOptions(capacity: 1 << 21)).status().allocated
                guard imported == UInt64(count) else {
                    throw RawError(call: "import put \(imported) IDs, not \(count)", code: EINVAL)
                }
            }
            try? FileManager.default.removeItem(atPath: file)
            try? FileManager.default.removeItem(atPath: rawFile)
        }
        let importRecordSize = idRecordBytes(set: 2, guest: 0, data: data).count
        let n = count >= 1_000_000 ? "\(count / 1_000_000)M" : "\(count / 1000)k"
        report.times("export \(n) IDs: `ioasid migrate export --out` (time)", store: median(storeExport), raw: median(rawExport),
                     rawWhat: "C cursor scan, one JSON line per record to a file, one fsync (in-process)", floor: .timeAtMost(1.5))
        report.times("import \(n) IDs: `ioasid migrate import FILE` (time)", store: median(storeImport), raw: median(rawImport),
                     rawWhat: "\(n) mdb_put (\(importRecordSize) B) in one durable commit (in-process, no parsing)", floor: .timeAtMost(3))
        report.note("Export/import rows: the store's time is the `ioasid` process from spawn to exit (open, freeze/validate, "
                    + "SHA-256, write or commit, exit), median of \(rounds); its export file was \(exportBytes) bytes, the raw one \(rawBytes).")
    }

    /// Free-set of a 100,000-ID set in a store that also holds 500,000 other IDs, vs a raw
    /// delete of the same 100,000 keys from a B-tree of 600,000 in one durable commit.
    func freeSet() throws {
        let rounds = options.quick ? 1 : 5
        let value = RawBytes(idRecord)
        var store: [Double] = [], raw: [Double] = []
        for round in 0..<rounds {
            let storePath = fresh("store-freeset"), rawPath = fresh("raw-freeset")
            defer { for path in [storePath, rawPath] { try? FileManager.default.removeItem(atPath: path) } }
            let s = try IOASIDStore(path: storePath, options: storeOptions(capacity: 1 << 21))
            let other = try s.createSet(token: "vm:other", quota: 500_000)
            let victim = try s.createSet(token: "vm:victim", quota: 100_000)
            try s.write { tx in for _ in 0..<500_000 { _ = try tx.allocate(in: other) } }
            try s.write { tx in for _ in 0..<100_000 { _ = try tx.allocate(in: victim) } }
            let r = try RawEnvironment(path: rawPath)
            try r.fill(Array(1...600_000), value: value, perCommit: 600_000)
            try alternate(round) {
                var freed = 0
                store.append(try time { freed = try s.freeSet(victim, destroy: true).freed.count })
                guard freed == 100_000 else { throw RawError(call: "free-set freed \(freed)", code: EINVAL) }
            } _: {
                raw.append(try time { try r.commitDeletes(500_001...600_000) })
            }
        }
        report.times("free-set of 100,000 IDs (destroy) (time)", store: median(store), raw: median(raw),
                     rawWhat: "mdb_del of 100,000 of 600,000 keys in one durable commit")
    }
}

/// `count` C `mdb_put`s of 21-byte ID records (guest g, 2 bytes of data, the seal's 4) under ascending
/// 4-byte keys, in one durable commit.
private func rawPutAll(_ raw: RawEnvironment, count: UInt32, set: UInt32, data: [UInt8]) throws {
    let dbi = try raw.dbi()
    let value = RawBytes(idRecordBytes(set: set, guest: 0, data: data))
    let guestAt = 7  // version, state, set(4), hasGuest → guest at byte 7
    try raw.write { txn in
        var v = value.val
        for id in 1...count {
            value.pointer.storeBytes(of: id.bigEndian, toByteOffset: guestAt, as: UInt32.self)
            var k = id.bigEndian
            let rc = withUnsafeMutableBytes(of: &k) { kb -> Int32 in
                var mk = MDB_val(mv_size: 4, mv_data: kb.baseAddress)
                return mdb_put(txn, dbi, &mk, &v, 0)
            }
            try check(rc, "mdb_put")
        }
    }
}

/// A C cursor scan over every record, writing `{"data":"…","guest":G,"id":I}` per record
/// (the store's line format) to `path`, then one fsync. Returns the bytes written.
private func rawScanToFile(_ raw: RawEnvironment, _ path: String) throws -> Int {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { throw RawError(call: "open \(path)", code: errno) }
    defer { close(fd) }
    var buffer: [UInt8] = []
    buffer.reserveCapacity((1 << 20) + 256)
    var total = 0
    let hex = Array("0123456789abcdef".utf8)
    func flush() throws {
        var offset = 0
        while offset < buffer.count {
            let n = buffer[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw RawError(call: "write", code: errno) }
            offset += n
        }
        total += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }
    func decimal(_ v: UInt32) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        var x = v
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[n] = UInt8(48 + x % 10)
                x /= 10
                n += 1
            } while x > 0
            while n > 0 {
                n -= 1
                buffer.append(d[n])
            }
        }
    }
    try raw.scan { key, value in
        // value: u8 version, u8 state, u32 set, u8 hasGuest, [u32 guest], u32 length, data
        guard key.count == 4, value.count >= 11 else { throw RawError(call: "short record", code: EINVAL) }
        let id = UInt32(bigEndian: key.loadUnaligned(as: UInt32.self))
        var at = 6
        var guest: UInt32?
        if value[at] == 1 {
            guest = UInt32(bigEndian: value.loadUnaligned(fromByteOffset: at + 1, as: UInt32.self))
            at += 5
        } else {
            at += 1
        }
        let length = Int(UInt32(bigEndian: value.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
        at += 4
        buffer.append(UInt8(ascii: "{"))
        if length > 0, at + length <= value.count {
            buffer.append(contentsOf: #""data":""#.utf8)
            for b in value[at..<at + length] {
                buffer.append(hex[Int(b >> 4)])
                buffer.append(hex[Int(b & 15)])
            }
            buffer.append(contentsOf: #"","#.utf8)
        }
        if let guest {
            buffer.append(contentsOf: #""guest":"#.utf8)
            decimal(guest)
            buffer.append(UInt8(ascii: ","))
        }
        buffer.append(contentsOf: #""id":"#.utf8)
        decimal(id)
        buffer.append(contentsOf: "}\n".utf8)
        if buffer.count >= 1 << 20 { try flush() }
        return true
    }
    try flush()
    guard fsync(fd) == 0 else { throw RawError(call: "fsync", code: errno) }
    return total
}
