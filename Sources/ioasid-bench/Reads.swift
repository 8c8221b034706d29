// Lookups: find, findSet and guest → host, each in its own read transaction and
// many in one, beside raw C `mdb_get` (with `mdb_txn_renew`/`mdb_txn_reset` for
// the one-transaction-per-lookup case).

import CLMDB
import Foundation
import IOASIDMigrations
import IOASIDStore

extension Bench {
    func find() throws {
        let populated: UInt32 = 100_000
        let inTxn = options.quick ? 200_000 : 1_000_000
        let ownTxn = options.quick ? 50_000 : 200_000

        let (store, set) = try openStore(fresh("store-find"))
        try store.write { tx in for g in 1...populated { _ = try tx.allocate(in: set, guest: g) } }
        // Raw: the same records — 19-byte ID records (15 and the seal) under 4-byte keys, and
        // 4-byte host IDs (8 with the seal) under 8-byte (set ‖ guest) keys, in two named databases.
        let raw = try RawEnvironment(path: fresh("raw-find"), databases: ["ids", "guests"])
        let ids = try raw.dbi("ids"), guests = try raw.dbi("guests")
        let idValue = RawBytes(idRecordBytes(set: set.rawValue, guest: 1))
        let hostValue = RawBytes(sealSized(bigEndian(1)))
        try raw.fill(Array(1...populated), value: idValue)
        try raw.write { txn in
            for g in 1...populated {
                var key = bigEndian(set.rawValue) + bigEndian(g)
                try RawEnvironment.put(txn, guests, rawKey: &key, hostValue)
            }
        }
        // The same, in an environment with the store's database names: after each renew, LMDB
        // looks up a named database's root by its name in the main database (a binary search
        // over the names), so the number of names is part of an own-transaction lookup's cost.
        let storeNames = StoreLayout.DB.allCases.map(\.rawValue) + [StoreLayout.historyDatabase]
        let named = try RawEnvironment(path: fresh("raw-find-names"), databases: storeNames)
        let namedIDs = try named.dbi("ids")
        try named.fill(Array(1...populated), value: idValue)
        // Check that the store hands out IDs 1…populated with guest g → host g, which the raw side mirrors.
        guard try store.hostID(forGuest: populated, in: set).rawValue == populated else {
            throw RawError(call: "store layout is not what the benchmark assumes", code: EINVAL)
        }

        var random = SystemRandomNumberGenerator()
        let order = (0..<inTxn).map { _ in UInt32.random(in: 1...populated, using: &random) }
        let few = order.prefix(ownTxn)
        let reader = try raw.resetReader()
        defer { mdb_txn_abort(reader) }
        let namedReader = try named.resetReader()
        defer { mdb_txn_abort(namedReader) }
        var sink = 0

        /// Raw lookups of `keys` in one read transaction.
        func rawInOne(_ keys: ArraySlice<UInt32>, guest: Bool) throws -> Double {
            try check(mdb_txn_renew(reader), "mdb_txn_renew")
            defer { mdb_txn_reset(reader) }
            return Double(keys.count) / (try time {
                if guest {
                    for g in keys { sink &+= try RawEnvironment.get(reader, guests, set.rawValue, g) }
                } else {
                    for id in keys { sink &+= try RawEnvironment.get(reader, ids, id) }
                }
            })
        }
        /// Raw lookups of `keys`, each `mdb_txn_renew` + `mdb_get` + `mdb_txn_reset`.
        func rawEach(_ keys: ArraySlice<UInt32>, guest: Bool) throws -> Double {
            Double(keys.count) / (try time {
                for k in keys {
                    try check(mdb_txn_renew(reader), "mdb_txn_renew")
                    sink &+= guest ? try RawEnvironment.get(reader, guests, set.rawValue, k) : try RawEnvironment.get(reader, ids, k)
                    mdb_txn_reset(reader)
                }
            })
        }

        /// `rawEach` of IDs in the environment with the store's database names.
        func namedEach(_ keys: ArraySlice<UInt32>) throws -> Double {
            Double(keys.count) / (try time {
                for k in keys {
                    try check(mdb_txn_renew(namedReader), "mdb_txn_renew")
                    sink &+= try RawEnvironment.get(namedReader, namedIDs, k)
                    mdb_txn_reset(namedReader)
                }
            })
        }

        let all = order[...]
        var r = [String: [Double]]()
        for round in 0..<rounds {
            var steps: [(String, () throws -> Double)] = [
                ("raw id", { try rawInOne(all, guest: false) }),
                ("raw guest", { try rawInOne(all, guest: true) }),
                ("find", { Double(all.count) / (try time { try store.read { tx in for id in all { sink &+= Int(try tx.find(IOASID(id), in: set).id.rawValue) } } }) }),
                ("findSet", { Double(all.count) / (try time { try store.read { tx in for id in all { sink &+= Int(try tx.findSet(IOASID(id)).rawValue) } } }) }),
                ("host", { Double(all.count) / (try time { try store.read { tx in for g in all { sink &+= Int(try tx.hostID(forGuest: g, in: set).rawValue) } } }) }),
                ("raw id own", { try rawEach(few, guest: false) }),
                ("raw guest own", { try rawEach(few, guest: true) }),
                ("raw id own, store's names", { try namedEach(few) }),
                ("find own", { Double(few.count) / (try time { for id in few { sink &+= Int(try store.find(IOASID(id), in: set).id.rawValue) } }) }),
                ("findSet own", { Double(few.count) / (try time { for id in few { sink &+= Int(try store.findSet(IOASID(id)).rawValue) } }) }),
                ("host own", { Double(few.count) / (try time { for g in few { sink &+= Int(try store.hostID(forGuest: g, in: set).rawValue) } }) }),
            ]
            if round % 2 == 1 { steps.reverse() }
            for (name, step) in steps { r[name, default: []].append(try step()) }
        }
        let m = { (name: String) in median(r[name] ?? []) }
        report.rates("find(id, in:), own read txn each", store: m("find own"), raw: m("raw id own"),
                     rawWhat: "mdb_txn_renew + mdb_get + mdb_txn_reset", floor: .atLeast(0.8))
        report.rates("find(id, in:), own read txn each, beside raw with the store's \(storeNames.count) database names",
                     store: m("find own"), raw: m("raw id own, store's names"),
                     rawWhat: "mdb_txn_renew + mdb_get + mdb_txn_reset, \(storeNames.count) named databases (the row above: 2)")
        report.rates("find(id, in:), all in one read txn", store: m("find"), raw: m("raw id"),
                     rawWhat: "mdb_get in one read txn", floor: .atLeast(0.85))
        report.rates("findSet(id), own read txn each", store: m("findSet own"), raw: m("raw id own"),
                     rawWhat: "mdb_txn_renew + mdb_get + mdb_txn_reset")
        report.rates("findSet(id), all in one read txn", store: m("findSet"), raw: m("raw id"),
                     rawWhat: "mdb_get in one read txn")
        report.rates("hostID(forGuest:in:), own read txn each", store: m("host own"), raw: m("raw guest own"),
                     rawWhat: "mdb_txn_renew + mdb_get (8 B key) + mdb_txn_reset")
        report.rates("hostID(forGuest:in:), all in one read txn", store: m("host"), raw: m("raw guest"),
                     rawWhat: "mdb_get (8 B key) in one read txn")
        if sink == 42 { say("") }  // keeps the lookups' results alive
    }
}
