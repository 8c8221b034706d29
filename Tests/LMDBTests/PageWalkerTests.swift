import Foundation
import LMDB
import Testing

/// Finds pages in a data file image the way LMDB would (newest meta, named records),
/// to aim damage at pages that are really in use.
struct Layout {
    let bytes: [UInt8]
    let pageSize = 4096

    var newestMeta: Int { bytes.u64(144) >= bytes.u64(pageSize + 144) ? 0 : pageSize }
    var lastPage: UInt64 { bytes.u64(newestMeta + 136) }
    var mainRoot: UInt64 { bytes.u64(newestMeta + 88 + 40) }
    var freeRoot: UInt64 { bytes.u64(newestMeta + 40 + 40) }

    func page(_ pgno: UInt64) -> Int { Int(pgno) * pageSize }
    func flags(_ pgno: UInt64) -> Int { bytes.u16(page(pgno) + 10) }
    func keyCount(_ pgno: UInt64) -> Int { (bytes.u16(page(pgno) + 12) - 16) / 2 }
    /// Absolute offset of node `i` of page `pgno`.
    func node(_ pgno: UInt64, _ i: Int) -> Int { page(pgno) + bytes.u16(page(pgno) + 16 + 2 * i) }
    func keySize(_ node: Int) -> Int { bytes.u16(node + 6) }
    func child(_ pgno: UInt64, _ i: Int) -> UInt64 {
        let n = node(pgno, i)
        return UInt64(bytes.u16(n)) | UInt64(bytes.u16(n + 2)) << 16 | UInt64(bytes.u16(n + 4)) << 32
    }

    /// Absolute offset of the `MDB_db` record of a named database (in a main-DB leaf).
    func namedRecord(_ name: String) -> Int? {
        var pgno = mainRoot
        while flags(pgno) == 1 { pgno = child(pgno, keyCount(pgno) - 1) }  // main is tiny; good enough
        for i in 0 ..< keyCount(pgno) {
            let n = node(pgno, i)
            let k = Array(bytes[(n + 8) ..< (n + 8 + keySize(n))])
            if k == Array(name.utf8) { return n + 8 + keySize(n) }
        }
        return nil
    }

    func root(_ name: String) -> UInt64? { namedRecord(name).map { bytes.u64($0 + 40) } }

    /// Leaf pages of the tree under `root`, left to right.
    func leaves(_ root: UInt64) -> [UInt64] {
        if flags(root) == 2 { return [root] }
        return (0 ..< keyCount(root)).flatMap { leaves(child(root, $0)) }
    }
}

@Suite("Page walker")
struct PageWalkerTests {
    @Test("A fresh store and a filled one (named databases, overflow pages, a free list) walk clean")
    func cleanStores() throws {
        try withScratchDirectory { root in
            let fresh = root + "/fresh"
            do { _ = try Environment.open(path: fresh) }
            let freshReport = try PageWalker.check(directory: fresh)
            #expect(freshReport.isClean, "\(freshReport.problems)")

            let store = root + "/store"
            let contents = try makeFixtureStore(at: store, records: 50_000)
            let started = ContinuousClock.now
            let report = try PageWalker.check(directory: store)
            let elapsed = ContinuousClock.now - started
            #expect(report.isClean, "\(report.problems.prefix(5))")
            let named = report.databases.filter { if case .named = $0.database { true } else { false } }
            #expect(named.count == 4)
            for statistics in named {
                guard case .named(let name) = statistics.database else { continue }
                #expect(statistics.walked == statistics.recorded)
                #expect(statistics.walked.entries == UInt64(contents.databases[name]?.count ?? -1), "\(name)")
            }
            let gamma = named.first { $0.database == .named("gamma") }
            #expect((gamma?.walked.overflowPages ?? 0) > 0)
            #expect(report.freePages > 0)
            #expect(report.databases.first { $0.database == .freeList }?.walked.entries ?? 0 > 0)
            print("walked \(report.summary?.lastPage ?? 0) pages (\(report.pagesRead) reads, \(report.freePages) free, \(report.unaccountedPages) unaccounted) of 50k records in \(elapsed)")

            // A snapshot copy and a compacted copy, taken while the store is open.
            let env = try Environment.open(path: store)
            try FileManager.default.createDirectory(atPath: root + "/copy", withIntermediateDirectories: false)
            try FileManager.default.createDirectory(atPath: root + "/compact", withIntermediateDirectories: false)
            try env.copy(to: root + "/copy")
            try env.copy(to: root + "/compact", compact: true)
            for directory in [store, root + "/copy", root + "/compact"] {
                let again = try PageWalker.check(directory: directory)
                #expect(again.isClean, "\(directory): \(again.problems.prefix(5))")
            }
            let compact = try PageWalker.check(directory: root + "/compact")
            #expect(compact.unaccountedPages == 0)
        }
    }

    /// Walks a damaged copy and expects a problem of `kind` (on `page`, in `database`, when given).
    func expectProblem(_ bytes: [UInt8], in root: String, _ kind: PageWalkReport.Problem.Kind,
                       page: UInt64? = nil, database: PageWalkReport.Database? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation,
                       _ damage: (inout [UInt8]) -> Void) throws {
        let directory = try damagedCopy(bytes, in: root, damage)
        // The cheap check passes these (the meta pages are intact) ...
        if case .notInitialized = try DataFile.inspect(directory: directory) {
            Issue.record("not initialised?", sourceLocation: sourceLocation)
        }
        // ... the walk does not.
        let report = try PageWalker.check(directory: directory)
        let match = report.problems.first {
            $0.kind == kind && (page == nil || $0.page == page) && (database == nil || $0.database == database)
        }
        #expect(match != nil, "expected \(kind) on page \(page.map(String.init) ?? "any") in \(database.map { "\($0)" } ?? "any"); got \(report.problems)",
                sourceLocation: sourceLocation)
    }

    @Test("Damage inside the trees is found and placed: branch pointer, node offset, key order, overflow, swaps, reuse, records")
    func treeDamage() throws {
        try withFixtureLayout(records: 20_000) { root, bytes, layout in
            let alpha = PageWalkReport.Database.named("alpha")
            guard let alphaRoot = layout.root("alpha"), let betaRoot = layout.root("beta"), let gammaRoot = layout.root("gamma"),
                  let alphaRecord = layout.namedRecord("alpha") else {
                Issue.record("fixture layout not as expected")
                return
            }
            #expect(layout.flags(alphaRoot) == 1, "alpha's root is a branch page")
            let leaves = layout.leaves(alphaRoot)
            #expect(leaves.count > 2)

            // A bit flip in a branch page's child pointer.
            try expectProblem(bytes, in: root, .pageOutOfRange, page: nil, database: alpha) { b in
                b[layout.node(alphaRoot, 1) + 3] ^= 0x40
            }
            // A bit flip in a branch page's mp_lower.
            try expectProblem(bytes, in: root, .badPageBounds, page: alphaRoot, database: alpha) { b in
                b[layout.page(alphaRoot) + 12] ^= 0x01
            }
            // A leaf's node offset pointing at the page's last two bytes.
            try expectProblem(bytes, in: root, .badNode, page: leaves[0], database: alpha) { b in
                b.setU16(layout.page(leaves[0]) + 16, 4094)
            }
            // Two keys of one leaf exchanged.
            try expectProblem(bytes, in: root, .keyOrder, page: leaves[1], database: alpha) { b in
                let n0 = layout.node(leaves[1], 0), n1 = layout.node(leaves[1], 1)
                for j in 0 ..< 4 { b.swapAt(n0 + 8 + j, n1 + 8 + j) }
            }
            // A key raised above the next separator of its parent.
            try expectProblem(bytes, in: root, .keyOutOfBounds, page: leaves[0], database: alpha) { b in
                let last = layout.node(leaves[0], layout.keyCount(leaves[0]) - 1)
                b[last + 8] = 0xFF
            }
            // A large value pointing past the data.
            let bigLeaf = layout.leaves(gammaRoot).first { pgno in
                (0 ..< layout.keyCount(pgno)).contains { bytes.u16(layout.node(pgno, $0) + 4) & 1 != 0 }
            }
            guard let bigLeaf else {
                Issue.record("no overflow value in gamma")
                return
            }
            let bigIndex = (0 ..< layout.keyCount(bigLeaf)).first { bytes.u16(layout.node(bigLeaf, $0) + 4) & 1 != 0 } ?? 0
            let bigNode = layout.node(bigLeaf, bigIndex)
            let overflow = bytes.u64(bigNode + 8 + layout.keySize(bigNode))
            try expectProblem(bytes, in: root, .pageOutOfRange, page: layout.lastPage + 1000, database: .named("gamma")) { b in
                b.setU64(bigNode + 8 + layout.keySize(bigNode), layout.lastPage + 1000)
            }
            // A large value pointing at a leaf page, and an overflow run claimed too long.
            try expectProblem(bytes, in: root, .pageReused, database: .named("gamma")) { b in
                b.setU64(bigNode + 8 + layout.keySize(bigNode), leaves[0])
            }
            try expectProblem(bytes, in: root, .badOverflow, page: overflow, database: .named("gamma")) { b in
                b.setU32(layout.page(overflow) + 12, UInt32(layout.lastPage))
            }
            try expectProblem(bytes, in: root, .badOverflow, page: overflow, database: .named("gamma")) { b in
                b.setU16(layout.page(overflow) + 10, 2)
            }
            // Two leaf pages swapped, as a misdirected write leaves them ...
            try expectProblem(bytes, in: root, .pageNumberMismatch, page: leaves[0], database: alpha) { b in
                for j in 0 ..< 4096 { b.swapAt(layout.page(leaves[0]) + j, layout.page(leaves[2]) + j) }
            }
            // ... and with their page numbers patched up: the key order gives them away.
            try expectProblem(bytes, in: root, .keyOutOfBounds, database: alpha) { b in
                for j in 0 ..< 4096 { b.swapAt(layout.page(leaves[0]) + j, layout.page(leaves[2]) + j) }
                b.setU64(layout.page(leaves[0]), leaves[0])
                b.setU64(layout.page(leaves[2]), leaves[2])
            }
            // One page in two trees.
            try expectProblem(bytes, in: root, .pageReused, page: layout.leaves(betaRoot)[0]) { b in
                let n = layout.node(alphaRoot, 1)
                let target = layout.leaves(betaRoot)[0]
                b.setU16(n, Int(target & 0xFFFF))
                b.setU16(n + 2, Int((target >> 16) & 0xFFFF))
            }
            // A page both in a tree and in the free list.
            try expectProblem(bytes, in: root, .pageReused, page: leaves[0]) { b in
                var free = layout.freeRoot
                while layout.flags(free) == 1 { free = layout.child(free, 0) }
                let n = layout.node(free, 0)
                let data = n + 8 + layout.keySize(n)
                if b.u16(n + 4) & 1 != 0 {  // the list is in an overflow page
                    let first = layout.page(b.u64(data)) + 16
                    b.setU64(first, 1)
                    b.setU64(first + 8, leaves[0])
                } else {
                    b.setU64(data, 1)
                    b.setU64(data + 8, leaves[0])
                }
            }
            // A free list that claims more entries than it holds.
            try expectProblem(bytes, in: root, .badFreeList, database: .freeList) { b in
                var free = layout.freeRoot
                while layout.flags(free) == 1 { free = layout.child(free, 0) }
                let n = layout.node(free, 0)
                let data = n + 8 + layout.keySize(n)
                if b.u16(n + 4) & 1 != 0 {
                    b.setU64(layout.page(b.u64(data)) + 16, 1 << 40)
                } else {
                    b.setU64(data, 1 << 40)
                }
            }
            // Named-database records: counts, depth, flags (sorted duplicates).
            try expectProblem(bytes, in: root, .countMismatch, database: alpha) { b in
                b.setU64(alphaRecord + 32, b.u64(alphaRecord + 32) + 1)
            }
            try expectProblem(bytes, in: root, .depthMismatch, database: alpha) { b in
                b.setU16(alphaRecord + 6, b.u16(alphaRecord + 6) + 1)
            }
            try expectProblem(bytes, in: root, .unsupported, database: alpha) { b in
                b.setU16(alphaRecord + 4, 0x04)
            }
            try expectProblem(bytes, in: root, .pageOutOfRange, database: alpha) { b in
                b.setU64(alphaRecord + 40, layout.lastPage + 1)
            }
            // A named-database record turned into a plain value of the main database.
            try expectProblem(bytes, in: root, .unsupported, database: .main) { b in
                b[alphaRecord - 5 - 8 + 4] = 0  // mn_flags of the node whose key is "alpha" (5 bytes)
            }
            // A leaf flagged as a branch page.
            try expectProblem(bytes, in: root, .badPageFlags, page: leaves[3], database: alpha) { b in
                b.setU16(layout.page(leaves[3]) + 10, 0x12)
            }
        }
    }

    @Test("Hundreds of random damages: both checks always finish, and whatever the walker passes LMDB reads without a fault")
    func randomDamage() throws {
        try withScratchDirectory { root in
            let contents = try makeFixtureStore(at: root + "/store", records: 3000)
            let bytes = try readData(root + "/store")
            var generator = SplitMix64(seed: 20_240_611)
            var outcomes: [String: Int] = [:]
            for round in 0 ..< 400 {
                let kind = Int(generator.next() % 5)
                let directory = try damagedCopy(bytes, in: root) { b in
                    let n = b.count
                    switch kind {
                    case 0:  // a few bit flips anywhere
                        for _ in 0 ... Int(generator.next() % 4) { b[Int(generator.next() % UInt64(n))] ^= UInt8(1) << (generator.next() % 8) }
                    case 1:  // a zeroed run
                        let start = Int(generator.next() % UInt64(n))
                        let length = 1 + Int(generator.next() % 8192)
                        for i in start ..< min(n, start + length) { b[i] = 0 }
                    case 2:  // random bytes
                        let start = Int(generator.next() % UInt64(n))
                        for i in start ..< min(n, start + 1 + Int(generator.next() % 64)) { b[i] = UInt8(truncatingIfNeeded: generator.next()) }
                    case 3:  // a truncation
                        b = Array(b[0 ..< Int(generator.next() % UInt64(n))])
                    default:  // flips aimed at page headers and node tables, where the structure is
                        for _ in 0 ... Int(generator.next() % 3) {
                            let page = Int(generator.next() % UInt64(n / 4096))
                            let offset = page * 4096 + Int(generator.next() % 64)
                            if offset < n { b[offset] ^= UInt8(1) << (generator.next() % 8) }
                        }
                    }
                }
                defer { try? FileManager.default.removeItem(atPath: directory) }
                var inspected = false
                do throws(DataFileError) {
                    if case .valid = try DataFile.inspect(directory: directory) { inspected = true }
                } catch {
                    #expect(error.isDamage, "round \(round): \(error)")
                }
                let report = try PageWalker.check(directory: directory)
                if !inspected {
                    #expect(!report.isClean, "round \(round): the walker passed what the meta check refused")
                }
                guard inspected, report.isClean else {
                    outcomes[report.problems.first.map { "\($0.kind)" } ?? "meta", default: 0] += 1
                    continue
                }
                outcomes["clean", default: 0] += 1
                // Passed both checks: LMDB may map it. Read every record of every named database.
                var options = Environment.Options()
                options.create = false
                options.readOnly = true
                let env = try Environment.open(path: directory, options: options)
                for statistics in report.databases {
                    guard case .named(let name) = statistics.database, Array(name.utf8) == statistics.nameBytes,
                          !name.utf8.contains(0), contents.databases[name] != nil else { continue }
                    let db = try env.openDatabase(named: name)
                    let (seen, recorded) = try env.read { txn in
                        let seen = try txn.withCursor(on: db) { cursor -> UInt64 in
                            var n: UInt64 = 0
                            var entry = try cursor.first()
                            while entry != nil {
                                n += 1
                                entry = try cursor.next()
                            }
                            return n
                        }
                        return (seen, try txn.count(of: db))
                    }
                    #expect(seen == UInt64(recorded), "round \(round): \(name)")
                    #expect(seen == statistics.walked.entries, "round \(round): \(name)")
                }
            }
            print("random damage outcomes: \(outcomes.sorted { $0.key < $1.key })")
            #expect(outcomes["clean", default: 0] > 0)
        }
    }
}
