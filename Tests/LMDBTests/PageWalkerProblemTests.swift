import Foundation
import LMDB
import Testing

/// Runs `body` in a scratch directory holding a fixture store of `records`
/// records, with its data file's bytes and their layout.
func withFixtureLayout(records: Int, _ body: (_ root: String, _ bytes: [UInt8], _ layout: Layout) throws -> Void) throws {
    try withScratchDirectory { root in
        try makeFixtureStore(at: root + "/store", records: records)
        let bytes = try readData(root + "/store")
        try body(root, bytes, Layout(bytes: bytes))
    }
}

/// One node of a leaf page, as LMDB lays it out: `mn_lo`/`mn_hi` (the value's size),
/// `mn_flags`, `mn_ksize`, the key, then the value's bytes (8 bytes, a page number,
/// for a large value).
struct LeafNode {
    var flags: Int
    var key: [UInt8]
    /// What `mn_lo`/`mn_hi` say.
    var dataSize: Int
    /// What follows the key in the page.
    var data: [UInt8]
}

extension Layout {
    /// The nodes of leaf page `pgno`, in order.
    func leafNodes(_ b: [UInt8], _ pgno: UInt64) -> [LeafNode] {
        (0 ..< keyCount(pgno)).map { i in
            let n = node(pgno, i)
            let flags = b.u16(n + 4), keySize = b.u16(n + 6)
            let dataSize = b.u16(n) | b.u16(n + 2) << 16
            let stored = flags & 1 != 0 ? 8 : dataSize
            return LeafNode(flags: flags, key: Array(b[(n + 8) ..< (n + 8 + keySize)]),
                            dataSize: dataSize, data: Array(b[(n + 8 + keySize) ..< (n + 8 + keySize + stored)]))
        }
    }

    /// Rewrites leaf page `pgno` to hold exactly `nodes` (packed from the page's end, as LMDB does),
    /// keeping its page number and flags.
    func writeLeaf(_ b: inout [UInt8], _ pgno: UInt64, _ nodes: [LeafNode]) {
        let start = page(pgno)
        for i in (start + 12) ..< (start + pageSize) { b[i] = 0 }
        var top = pageSize
        for (i, n) in nodes.enumerated() {
            let size = (8 + n.key.count + n.data.count + 1) & ~1
            top -= size
            b.setU16(start + 16 + 2 * i, top)
            let at = start + top
            b.setU16(at, n.dataSize & 0xFFFF)
            b.setU16(at + 2, n.dataSize >> 16)
            b.setU16(at + 4, n.flags)
            b.setU16(at + 6, n.key.count)
            b.replaceSubrange((at + 8) ..< (at + 8 + n.key.count), with: n.key)
            b.replaceSubrange((at + 8 + n.key.count) ..< (at + 8 + n.key.count + n.data.count), with: n.data)
        }
        b.setU16(start + 12, 16 + 2 * nodes.count)
        b.setU16(start + 14, top)
    }

    /// The transaction ID of the newest meta page.
    var newestTxnid: UInt64 { bytes.u64(newestMeta + 144) }

    /// Absolute offset of the page list (count, then page numbers) of free-list node `i` of leaf `pgno`.
    func freeList(_ b: [UInt8], _ pgno: UInt64, _ i: Int) -> Int {
        let n = node(pgno, i)
        let data = n + 8 + keySize(n)
        return b.u16(n + 4) & 1 != 0 ? page(b.u64(data)) + 16 : data
    }

    /// Every large value of the tree under `root`: its leaf page, node index and first overflow page.
    func largeValues(_ root: UInt64) -> [(leaf: UInt64, index: Int, overflow: UInt64, size: Int)] {
        leaves(root).flatMap { pgno in
            (0 ..< keyCount(pgno)).compactMap { i -> (leaf: UInt64, index: Int, overflow: UInt64, size: Int)? in
                let n = node(pgno, i)
                guard bytes.u16(n + 4) & 1 != 0 else { return nil }
                return (pgno, i, bytes.u64(n + 8 + keySize(n)), bytes.u16(n) | bytes.u16(n + 2) << 16)
            }
        }
    }

    /// Every page of the tree under `root` (branch and leaf pages).
    func treePages(_ root: UInt64) -> [UInt64] {
        if flags(root) == 2 { return [root] }
        return [root] + (0 ..< keyCount(root)).flatMap { treePages(child(root, $0)) }
    }
}

extension Array where Element == UInt8 {
    func u32(_ offset: Int) -> UInt32 { (0 ..< 4).reduce(UInt32(0)) { $0 | UInt32(self[offset + $1]) << (8 * UInt32($1)) } }
}

@Suite("Page walker: each kind of problem")
struct PageWalkerProblemTests {
    /// Walks a damaged copy of `bytes`; returns the problems of `kind` (on `page` and in
    /// `database` when given), recording an issue when there are none.
    @discardableResult
    func problems(_ bytes: [UInt8], in root: String, _ kind: PageWalkReport.Problem.Kind,
                  page: UInt64? = nil, database: PageWalkReport.Database? = nil, containing text: String? = nil,
                  sourceLocation: SourceLocation = #_sourceLocation,
                  _ damage: (inout [UInt8]) -> Void) throws -> [PageWalkReport.Problem] {
        let directory = try damagedCopy(bytes, in: root, damage)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The meta pages are intact: the cheap check passes ...
        guard case .valid = try DataFile.inspect(directory: directory) else {
            Issue.record("the meta check refused the damaged copy", sourceLocation: sourceLocation)
            return []
        }
        // ... and the walk finds the damage.
        let report = try PageWalker.check(directory: directory)
        let matches = report.problems.filter {
            $0.kind == kind && (page == nil || $0.page == page) && (database == nil || $0.database == database)
                && (text == nil || $0.message.contains(text!))
        }
        #expect(!matches.isEmpty,
                "expected \(kind) on page \(page.map(String.init) ?? "any") in \(database.map { "\($0)" } ?? "any") saying \(text ?? "anything"); got \(report.problems)",
                sourceLocation: sourceLocation)
        return matches
    }

    @Test("Database names and problems describe themselves")
    func descriptions() throws {
        #expect(PageWalkReport.Database.meta.description == "meta")
        #expect(PageWalkReport.Database.main.description == "main")
        #expect(PageWalkReport.Database.freeList.description == "free list")
        #expect(PageWalkReport.Database.named("ids").description == "\"ids\"")
        #expect(PageWalkReport.Database.named("a\u{1}b\u{7F}c\nd").description == "\"a\\u{1}b\\u{7f}c\\u{a}d\"")
        #expect("\(PageWalkReport.Database.named("é"))" == "\"é\"")

        try withFixtureLayout(records: 4000) { root, bytes, layout in
            guard let alphaRoot = layout.root("alpha"), let alphaRecord = layout.namedRecord("alpha") else {
                Issue.record("fixture layout not as expected")
                return
            }
            let leaf = layout.leaves(alphaRoot)[1]
            // A problem on a page ...
            let onPage = try problems(bytes, in: root, .emptyPage, page: leaf) { b in b.setU16(layout.page(leaf) + 12, 16) }
            #expect(onPage.first?.description == "page \(leaf) (\"alpha\"): a leaf page with no keys")
            // ... and one about a whole database.
            let whole = try problems(bytes, in: root, .countMismatch, page: nil, database: .named("alpha")) { b in
                b.setU64(alphaRecord + 32, b.u64(alphaRecord + 32) + 7)
            }
            #expect(whole.first?.page == nil)
            #expect(whole.first?.description.hasPrefix("\"alpha\": the database record says depth ") == true, "\(whole)")
        }
    }

    @Test("A data file walked by its own path: clean, and the same as by its directory")
    func walkByDataFilePath() throws {
        try withScratchDirectory { root in
            try makeFixtureStore(at: root + "/store", records: 2000)
            let byFile = try PageWalker.check(dataFile: root + "/store/data.mdb")
            #expect(byFile.isClean, "\(byFile.problems)")
            #expect(byFile.metaError == nil)
            #expect(byFile.path == root + "/store/data.mdb")
            let byDirectory = try PageWalker.check(directory: root + "/store")
            #expect(byFile.databases == byDirectory.databases)
            #expect(byFile.freePages == byDirectory.freePages)
            #expect(byFile.databases.count == 6)  // main, four named, free list
        }
    }

    @Test("Tree pages: no keys, sorted-duplicate page flags, a branch where the record says leaf")
    func treePageDamage() throws {
        try withFixtureLayout(records: 4000) { root, bytes, layout in
            let alpha = PageWalkReport.Database.named("alpha")
            guard let alphaRoot = layout.root("alpha"), let alphaRecord = layout.namedRecord("alpha") else {
                Issue.record("fixture layout not as expected")
                return
            }
            #expect(layout.flags(alphaRoot) == 1 && bytes.u16(alphaRecord + 6) == 2, "alpha is two levels deep")
            let leaves = layout.leaves(alphaRoot)

            // mp_lower at the header's end: no keys, on a leaf and on a branch page.
            try problems(bytes, in: root, .emptyPage, page: leaves[0], database: alpha, containing: "a leaf page with no keys") { b in
                b.setU16(layout.page(leaves[0]) + 12, 16)
            }
            try problems(bytes, in: root, .emptyPage, page: alphaRoot, database: alpha, containing: "a branch page with no keys") { b in
                b.setU16(layout.page(alphaRoot) + 12, 16)
            }
            // P_LEAF with P_LEAF2, and with P_SUBP: pages of sorted duplicates, which a plain tree never holds.
            for flags in [0x22, 0x42] {
                try problems(bytes, in: root, .unsupported, page: leaves[2], database: alpha,
                             containing: "sorted-duplicate page (flags 0x\(String(flags, radix: 16)))") { b in
                    b.setU16(layout.page(leaves[2]) + 10, flags)
                }
            }
            // The record says one level: the root is a branch page where a leaf belongs.
            try problems(bytes, in: root, .depthMismatch, page: alphaRoot, database: alpha,
                         containing: "a branch page at level 1, but the database record says the tree is 1 levels deep") { b in
                b.setU16(alphaRecord + 6, 1)
            }
            // Depths no tree has: 0 for a tree with a root, and more than LMDB's 32 levels.
            for depth in [0, 33, 0xFFFF] {
                let found = try problems(bytes, in: root, .badDatabaseRecord, page: alphaRoot, database: alpha,
                                         containing: "says the tree is \(depth) levels deep") { b in
                    b.setU16(alphaRecord + 6, depth)
                }
                #expect(found.count == 1)
            }
        }
    }

    @Test("Keys: empty, longer than 511 bytes; transaction IDs not 8 bytes, equal, or out of numeric order")
    func keyDamage() throws {
        try withFixtureLayout(records: 4000) { root, bytes, layout in
            let alpha = PageWalkReport.Database.named("alpha")
            guard let alphaRoot = layout.root("alpha"), layout.freeRoot != UInt64.max else {
                Issue.record("fixture layout not as expected")
                return
            }
            let leaf = layout.leaves(alphaRoot)[1]
            let nodes = layout.leafNodes(bytes, leaf)
            try problems(bytes, in: root, .badKeySize, page: leaf, database: alpha, containing: "node 0 has a 0-byte key") { b in
                var damaged = nodes
                damaged[0].key = []
                layout.writeLeaf(&b, leaf, damaged)
            }
            try problems(bytes, in: root, .badKeySize, page: leaf, database: alpha, containing: "node 1 has a 512-byte key") { b in
                var damaged = Array(nodes.prefix(3))
                damaged[1].key = damaged[1].key + [UInt8](repeating: 0, count: 512 - damaged[1].key.count)
                layout.writeLeaf(&b, leaf, damaged)
            }
            // A key of exactly 511 bytes (in order) is not a key-size problem.
            let longest = try damagedCopy(bytes, in: root) { b in
                var damaged = Array(nodes.prefix(3))
                damaged[1].key = damaged[1].key + [UInt8](repeating: 0, count: 511 - damaged[1].key.count)
                layout.writeLeaf(&b, leaf, damaged)
            }
            #expect(try PageWalker.check(directory: longest).problems.allSatisfy { $0.kind != .badKeySize })

            // The free list's keys are 8-byte transaction IDs compared as integers.
            let freeLeaf = layout.leaves(layout.freeRoot)[0]
            let freeNodes = layout.leafNodes(bytes, freeLeaf)
            try problems(bytes, in: root, .badKeySize, page: freeLeaf, database: .freeList,
                         containing: "node 0 has a 4-byte key where a transaction ID (8 bytes) belongs") { b in
                var damaged = freeNodes
                damaged[0].key = Array(damaged[0].key.prefix(4))
                layout.writeLeaf(&b, freeLeaf, damaged)
            }
            guard freeNodes.count >= 2 else {
                Issue.record("the fixture's free list has a single entry")
                return
            }
            try problems(bytes, in: root, .keyOrder, page: freeLeaf, database: .freeList, containing: "key 1 is not greater than key 0") { b in
                let n0 = layout.node(freeLeaf, 0), n1 = layout.node(freeLeaf, 1)
                b.setU64(n1 + 8, b.u64(n0 + 8))
            }
            // Compared as integers, not bytes: 0x100 after 0xFF is in order, 0xFF after 0x100 is not.
            let inOrder = try damagedCopy(bytes, in: root) { b in
                b.setU64(layout.node(freeLeaf, 0) + 8, 0xFF)
                b.setU64(layout.node(freeLeaf, 1) + 8, 0x100)
            }
            #expect(try PageWalker.check(directory: inOrder).problems.allSatisfy { $0.kind != .keyOrder && $0.kind != .keyOutOfBounds })
            try problems(bytes, in: root, .keyOrder, page: freeLeaf, database: .freeList, containing: "key 1 is not greater than key 0") { b in
                b.setU64(layout.node(freeLeaf, 0) + 8, 0x100)
                b.setU64(layout.node(freeLeaf, 1) + 8, 0xFF)
            }
        }
    }

    @Test("Leaf nodes: sorted duplicates, unknown flags, a malformed named-database record; past the problem limit")
    func nodeDamage() throws {
        try withFixtureLayout(records: 4000) { root, bytes, layout in
            let alpha = PageWalkReport.Database.named("alpha")
            guard let alphaRoot = layout.root("alpha") else {
                Issue.record("fixture layout not as expected")
                return
            }
            let leaves = layout.leaves(alphaRoot)
            try problems(bytes, in: root, .unsupported, page: leaves[1], database: alpha,
                         containing: "node 2 holds sorted duplicates (F_DUPDATA)") { b in
                b[layout.node(leaves[1], 2) + 4] |= 0x04
            }
            // F_SUBDATA belongs only in the main database; 0x10 nowhere.
            for flags in [0x02, 0x10] {
                try problems(bytes, in: root, .badNode, page: leaves[1], database: alpha,
                             containing: "node 3 has flags 0x\(String(flags, radix: 16))") { b in
                    b.setU16(layout.node(leaves[1], 3) + 4, flags)
                }
            }

            // A named-database record of 40 bytes instead of 48 ...
            let mainNodes = layout.leafNodes(bytes, layout.mainRoot)
            guard let alphaIndex = mainNodes.firstIndex(where: { $0.key == Array("alpha".utf8) }) else {
                Issue.record("no alpha record in the main database")
                return
            }
            #expect(mainNodes[alphaIndex].flags == 0x02 && mainNodes[alphaIndex].dataSize == 48)
            let short = try problems(bytes, in: root, .badDatabaseRecord, page: layout.mainRoot, database: .main,
                                     containing: "node \(alphaIndex) is a named-database record with flags 0x2 and 40 bytes of data") { b in
                var damaged = mainNodes
                damaged[alphaIndex].dataSize = 40
                damaged[alphaIndex].data = Array(damaged[alphaIndex].data.prefix(40))
                layout.writeLeaf(&b, layout.mainRoot, damaged)
            }
            #expect(short.first?.message.contains("expected exactly F_SUBDATA and 48 bytes") == true)
            // ... and one also flagged as a large value (its 48 bytes in an overflow page).
            try problems(bytes, in: root, .badDatabaseRecord, page: layout.mainRoot, database: .main,
                         containing: "node \(alphaIndex) is a named-database record with flags 0x3") { b in
                // The record moves to the last page, rewritten as a one-page overflow run (the main
                // database is walked first, so the page is not yet anyone's).
                let target = layout.lastPage
                let at = layout.page(target)
                for i in at ..< (at + layout.pageSize) { b[i] = 0 }
                b.setU64(at, target)
                b.setU16(at + 10, 0x04)
                b.setU32(at + 12, 1)
                b.replaceSubrange((at + 16) ..< (at + 16 + 48), with: mainNodes[alphaIndex].data)
                var damaged = mainNodes
                damaged[alphaIndex].flags = 0x03
                damaged[alphaIndex].data = (0 ..< 8).map { UInt8(truncatingIfNeeded: target >> (8 * UInt64($0))) }
                layout.writeLeaf(&b, layout.mainRoot, damaged)
            }

            // Every node of every alpha leaf flagged: more problems than a report lists.
            let directory = try damagedCopy(bytes, in: root) { b in
                for leaf in leaves {
                    for i in 0 ..< layout.keyCount(leaf) { b[layout.node(leaf, i) + 4] |= 0x04 }
                }
            }
            let report = try PageWalker.check(directory: directory)
            let flagged = leaves.reduce(0) { $0 + layout.keyCount($1) }
            #expect(flagged > PageWalkReport.problemLimit)
            #expect(report.problems.count == PageWalkReport.problemLimit)
            #expect(report.omittedProblems == flagged - PageWalkReport.problemLimit)
            #expect(report.problems.allSatisfy { $0.kind == .unsupported && $0.database == alpha })
            #expect(!report.isClean)
        }
    }

    @Test("Overflow runs: too short for their value, and running into another tree's page")
    func overflowDamage() throws {
        try withFixtureLayout(records: 4000) { root, bytes, layout in
            let gamma = PageWalkReport.Database.named("gamma")
            guard let gammaRoot = layout.root("gamma"), let alphaRoot = layout.root("alpha") else {
                Issue.record("fixture layout not as expected")
                return
            }
            let large = layout.largeValues(gammaRoot).sorted { $0.overflow < $1.overflow }
            guard let first = large.first else {
                Issue.record("no large value in gamma")
                return
            }
            #expect(first.size > 4096 - 16, "the value needs more than one page")
            #expect(bytes.u32(layout.page(first.overflow) + 12) >= 2)
            try problems(bytes, in: root, .badOverflow, page: first.overflow, database: gamma,
                         containing: "a \(first.size)-byte value does not fit in an overflow run of 1 page(s)") { b in
                b.setU32(layout.page(first.overflow) + 12, 1)
            }
            // Stretch the run over a page of alpha (walked before gamma).
            guard let target = layout.treePages(alphaRoot).filter({ $0 > first.overflow }).min() else {
                Issue.record("no alpha page after gamma's first overflow page")
                return
            }
            let reused = try problems(bytes, in: root, .pageReused, database: gamma,
                                      containing: "the overflow run from page \(first.overflow) names page ") { b in
                b.setU32(layout.page(first.overflow) + 12, UInt32(target - first.overflow + 1))
            }
            #expect(reused.contains { $0.message.contains("which already belongs to database ") }, "\(reused)")
        }
    }

    /// A data file (built page by page on the meta pages of `template`) whose main database
    /// lists `count` empty named databases, their names the 3-byte big-endian numbers 1…count.
    func manyDatabases(_ count: Int, template: [UInt8]) -> (bytes: [UInt8], depth: Int, branchPages: Int, leafPages: Int) {
        let pageSize = 4096
        var pages: [[UInt8]] = []
        func newPage(_ flags: Int) -> Int {
            var page = [UInt8](repeating: 0, count: pageSize)
            let pgno = pages.count + 2
            page.setU64(0, UInt64(pgno))
            page.setU16(10, flags)
            pages.append(page)
            return pages.count - 1
        }
        /// Packs nodes (header fields, key, data) into pages of `flags`; returns each page's number and first key.
        func pack(_ nodes: [(lo: Int, hi: Int, flags: Int, key: [UInt8], data: [UInt8])], flags: Int, emptyFirstKey: Bool)
            -> [(pgno: UInt64, firstKey: [UInt8])] {
            var result: [(pgno: UInt64, firstKey: [UInt8])] = []
            var index = 0
            while index < nodes.count {
                let slot = newPage(flags)
                var top = pageSize, n = 0
                let first = nodes[index].key
                while index < nodes.count {
                    let key = emptyFirstKey && n == 0 ? [] : nodes[index].key
                    let size = (8 + key.count + nodes[index].data.count + 1) & ~1
                    guard 16 + 2 * (n + 1) <= top - size else { break }
                    top -= size
                    pages[slot].setU16(16 + 2 * n, top)
                    pages[slot].setU16(top, nodes[index].lo)
                    pages[slot].setU16(top + 2, nodes[index].hi)
                    pages[slot].setU16(top + 4, nodes[index].flags)
                    pages[slot].setU16(top + 6, key.count)
                    pages[slot].replaceSubrange((top + 8) ..< (top + 8 + key.count), with: key)
                    pages[slot].replaceSubrange((top + 8 + key.count) ..< (top + 8 + key.count + nodes[index].data.count), with: nodes[index].data)
                    n += 1
                    index += 1
                }
                pages[slot].setU16(12, 16 + 2 * n)
                pages[slot].setU16(14, top)
                result.append((UInt64(slot + 2), first))
            }
            return result
        }
        var emptyRecord = [UInt8](repeating: 0, count: 48)
        emptyRecord.setU64(40, UInt64.max)
        var records: [(lo: Int, hi: Int, flags: Int, key: [UInt8], data: [UInt8])] = []
        for i in 1 ... count {
            let name: [UInt8] = [UInt8(truncatingIfNeeded: i >> 16), UInt8(truncatingIfNeeded: i >> 8), UInt8(truncatingIfNeeded: i)]
            records.append((lo: 48, hi: 0, flags: 0x02, key: name, data: emptyRecord))
        }
        let leaves = pack(records, flags: 0x02, emptyFirstKey: false)
        var level = leaves, depth = 1, branchPages = 0
        while level.count > 1 {
            var children: [(lo: Int, hi: Int, flags: Int, key: [UInt8], data: [UInt8])] = []
            for child in level {
                let lo = Int(child.pgno & 0xFFFF), hi = Int((child.pgno >> 16) & 0xFFFF), top = Int((child.pgno >> 32) & 0xFFFF)
                children.append((lo: lo, hi: hi, flags: top, key: child.firstKey, data: []))
            }
            level = pack(children, flags: 0x01, emptyFirstKey: true)
            depth += 1
            branchPages += level.count
        }
        var bytes = Array(template[0 ..< 2 * pageSize])
        let lastPage = UInt64(pages.count + 1)
        // Meta page 0 is the newest (transaction 2); meta page 1 holds transaction 1.
        for meta in [0, pageSize] {
            bytes.setU64(meta + 136, meta == 0 ? lastPage : 1)
            bytes.setU64(meta + 144, meta == 0 ? 2 : 1)
            bytes.setU64(meta + 40 + 40, UInt64.max)  // no free list
            for field in stride(from: 6, to: 40, by: 2) { bytes.setU16(meta + 40 + field, 0) }
            for field in stride(from: 0, to: 40, by: 2) { bytes.setU16(meta + 88 + field, 0) }
            bytes.setU64(meta + 88 + 40, UInt64.max)
        }
        bytes.setU16(88 + 6, depth)
        bytes.setU64(88 + 8, UInt64(branchPages))
        bytes.setU64(88 + 16, UInt64(leaves.count))
        bytes.setU64(88 + 32, UInt64(count))
        bytes.setU64(88 + 40, level[0].pgno)
        for page in pages { bytes.append(contentsOf: page) }
        return (bytes, depth, branchPages, leaves.count)
    }

    @Test("A main database listing more named databases than the walker tracks: reported, not miscounted")
    func tooManyDatabases() throws {
        try withScratchDirectory { root in
            do { _ = try Environment.open(path: root + "/fresh") }
            let template = try readData(root + "/fresh")
            // Owner codes are 16 bits, three of them reserved: 65 532 trees at most. The main database
            // and 65 531 named ones take them all, so the last named one and the free list go unwalked.
            let count = 65_532
            let built = manyDatabases(count, template: template)
            #expect(built.depth == 3)
            let directory = try damagedCopy(built.bytes, in: root) { _ in }
            let report = try PageWalker.check(directory: directory)
            // (Into locals first: an expectation that failed would otherwise print all 65 534 statistics.)
            let metaError = report.metaError, databases = report.databases.count, problems = report.problems
            let main = report.databases.first { $0.database == .main }
            #expect(metaError == nil)
            #expect(main?.walked == main?.recorded)
            #expect(main?.walked == PageWalkReport.Counts(depth: 3, branchPages: UInt64(built.branchPages),
                                                         leafPages: UInt64(built.leafPages), entries: UInt64(count)))
            #expect(databases == count + 2)
            let lastName: [UInt8] = [UInt8(truncatingIfNeeded: count >> 16), UInt8(truncatingIfNeeded: count >> 8), UInt8(truncatingIfNeeded: count)]
            let last = PageWalkReport.Database.named(String(decoding: lastName, as: UTF8.self))
            #expect(problems.map(\.database) == [last, .freeList], "\(problems.prefix(3))")
            #expect(problems.allSatisfy { $0.kind == .unsupported && $0.page == nil && $0.message == "too many named databases to check" })
            // With two fewer, every tree (main, the named ones, the free list) has an owner code.
            let fewer = manyDatabases(count - 2, template: template)
            let walked = try PageWalker.check(directory: try damagedCopy(fewer.bytes, in: root) { _ in })
            let fewerProblems = walked.problems, fewerDatabases = walked.databases.count
            #expect(fewerProblems.isEmpty, "\(fewerProblems.prefix(3))")
            #expect(fewerDatabases == count)
        }
    }

    @Test("A data file cut short while it is walked: the pages past the new end are reported, nothing is thrown")
    func truncatedDuringWalk() throws {
        try withScratchDirectory { root in
            try makeFixtureStore(at: root + "/store", records: 20_000)
            let bytes = try readData(root + "/store")
            // The cut must land after the meta check and before the walk ends: find the moment
            // by halving or doubling the delay (a cut before the check fails the check, one after
            // the walk leaves it clean).
            var delay: UInt32 = 2000
            var outcomes: [String] = []
            for _ in 0 ..< 60 {
                let directory = try damagedCopy(bytes, in: root) { _ in }
                defer { try? FileManager.default.removeItem(atPath: directory) }
                let path = directory + "/data.mdb"
                let wait = delay
                let cutter = Thread {
                    usleep(wait)
                    _ = truncate(path, 3 * 4096)
                }
                cutter.start()
                let report = try PageWalker.check(directory: directory)
                while !cutter.isFinished { usleep(100) }
                if report.metaError != nil {
                    #expect(report.metaError?.reason == .truncated)
                    outcomes.append("meta@\(wait)")
                    delay = delay * 2
                    continue
                }
                if report.isClean {
                    outcomes.append("clean@\(wait)")
                    delay = max(delay / 2, 20)
                    continue
                }
                let past = report.problems.filter { $0.kind == .pageOutOfRange && $0.message.hasSuffix("lies past the end of the file") }
                guard !past.isEmpty else {
                    // Cut as the walk read its very last values: what it read short is not a page. Again, earlier.
                    outcomes.append("late@\(wait): \(report.problems.prefix(2))")
                    delay = max(delay / 2, 20)
                    continue
                }
                #expect(past.allSatisfy { ($0.page ?? 0) >= 3 }, "\(past.prefix(5))")
                #expect(report.problems.allSatisfy { $0.kind != .meta })
                return
            }
            Issue.record("the cut never landed during the walk: \(outcomes)")
        }
    }

    @Test("The free list: a transaction after the newest, a list of odd size, one page freed twice")
    func freeListDamage() throws {
        try withFixtureLayout(records: 4000) { root, bytes, layout in
            guard layout.freeRoot != UInt64.max else {
                Issue.record("the fixture has no free list")
                return
            }
            let freeLeaves = layout.leaves(layout.freeRoot)
            let lastLeaf = freeLeaves[freeLeaves.count - 1]
            let lastIndex = layout.keyCount(lastLeaf) - 1
            let future = layout.newestTxnid + 5
            let after = try problems(bytes, in: root, .badFreeList, page: lastLeaf, database: .freeList,
                                     containing: "records pages freed by transaction \(future), after the newest (\(layout.newestTxnid))") { b in
                b.setU64(layout.node(lastLeaf, lastIndex) + 8, future)
            }
            #expect(after.count == 1)

            let leaf = freeLeaves[0]
            let nodes = layout.leafNodes(bytes, leaf)
            let txnid = bytes.u64(layout.node(leaf, 0) + 8)
            try problems(bytes, in: root, .badFreeList, page: leaf, database: .freeList,
                         containing: "node 0 (transaction \(txnid)) has a 12-byte page list") { b in
                var damaged = nodes
                damaged[0].flags = 0
                damaged[0].dataSize = 12
                damaged[0].data = [UInt8](repeating: 0, count: 12)
                layout.writeLeaf(&b, leaf, damaged)
            }
            try problems(bytes, in: root, .badFreeList, page: leaf, database: .freeList,
                         containing: "node 0 (transaction \(txnid)) has a 0-byte page list") { b in
                var damaged = nodes
                damaged[0].flags = 0
                damaged[0].dataSize = 0
                damaged[0].data = []
                layout.writeLeaf(&b, leaf, damaged)
            }

            // The same page in two entries' lists.
            guard nodes.count >= 2 else {
                Issue.record("the fixture's free list has a single entry")
                return
            }
            let firstList = layout.freeList(bytes, leaf, 0)
            let page = bytes.u64(firstList + 8)
            #expect(bytes.u64(firstList) >= 1 && page >= 2)
            try problems(bytes, in: root, .pageReused, page: page, database: .freeList,
                         containing: "names page \(page), which already belongs to the free list (as a free page)") { b in
                let second = layout.freeList(b, leaf, 1)
                b.setU64(second, 1)
                b.setU64(second + 8, page)
            }
        }
    }
}
