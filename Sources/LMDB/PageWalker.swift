#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// What ``PageWalker`` found in one data file.
public struct PageWalkReport: Sendable {
    /// A database of the environment (or the meta pages).
    public enum Database: Sendable, Hashable, CustomStringConvertible {
        /// The meta pages and the file itself.
        case meta
        /// The main (unnamed) database, which lists the named ones.
        case main
        /// The free-page database and the pages it lists as free.
        case freeList
        /// A named database (its name's bytes decoded as UTF-8, invalid bytes replaced).
        case named(String)

        /// `meta`, `main`, `free list` or the quoted name (control characters escaped).
        public var description: String {
            switch self {
            case .meta: "meta"
            case .main: "main"
            case .freeList: "free list"
            case .named(let name): "\"\(name.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined())\""
            }
        }
    }

    /// One thing wrong with the file.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// A stable, machine-readable name for the kind of damage.
        public struct Kind: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
            /// The stable name (for example `key-order`).
            public let rawValue: String
            /// Creates a kind from its stable name.
            public init(rawValue: String) { self.rawValue = rawValue }
            /// The stable name.
            public var description: String { rawValue }

            /// The file or its meta pages are damaged (the message says how; the walk did not start).
            public static let meta = Kind(rawValue: "meta")
            /// A page number outside `2…last page`.
            public static let pageOutOfRange = Kind(rawValue: "page-out-of-range")
            /// A page reached twice: from two places in the trees, or both in a tree and free.
            public static let pageReused = Kind(rawValue: "page-reused")
            /// A page's header carries another page number.
            public static let pageNumberMismatch = Kind(rawValue: "page-number-mismatch")
            /// Page flags that do not fit where the page is (or unknown flag bits).
            public static let badPageFlags = Kind(rawValue: "bad-page-flags")
            /// `mp_lower`/`mp_upper` out of order or outside the page.
            public static let badPageBounds = Kind(rawValue: "bad-page-bounds")
            /// A tree page with no keys.
            public static let emptyPage = Kind(rawValue: "empty-page")
            /// A node offset or a node's size does not fit in its page.
            public static let badNode = Kind(rawValue: "bad-node")
            /// A key longer than LMDB's 511-byte limit, or an empty key.
            public static let badKeySize = Kind(rawValue: "bad-key-size")
            /// Keys not in strictly ascending order.
            public static let keyOrder = Kind(rawValue: "key-order")
            /// A key outside the separator bounds its parent branch page sets.
            public static let keyOutOfBounds = Kind(rawValue: "key-out-of-bounds")
            /// A page at a depth that does not match the database's recorded depth.
            public static let depthMismatch = Kind(rawValue: "depth-mismatch")
            /// An overflow (large value) page run that is malformed or too short.
            public static let badOverflow = Kind(rawValue: "bad-overflow")
            /// A malformed database record (named-database entry, or a record's depth/root).
            public static let badDatabaseRecord = Kind(rawValue: "bad-database-record")
            /// A malformed free-page list.
            public static let badFreeList = Kind(rawValue: "bad-free-list")
            /// A database record's page or entry counts differ from what was walked.
            public static let countMismatch = Kind(rawValue: "count-mismatch")
            /// A structure this walker does not check (sorted duplicates, key-order flags);
            /// this package never creates them, so they count as damage.
            public static let unsupported = Kind(rawValue: "unsupported")
        }

        /// What kind of damage.
        public let kind: Kind
        /// The page concerned, when there is one.
        public let page: UInt64?
        /// The database the page belongs to.
        public let database: Database
        /// A human-readable account.
        public let message: String

        /// `page N (database): message`.
        public var description: String {
            if let page { return "page \(page) (\(database)): \(message)" }
            return "\(database): \(message)"
        }
    }

    /// Page and entry counts of one database.
    public struct Counts: Sendable, Hashable {
        /// Tree depth (0 for an empty database).
        public var depth: Int = 0
        /// Branch (internal) pages.
        public var branchPages: UInt64 = 0
        /// Leaf pages.
        public var leafPages: UInt64 = 0
        /// Overflow pages (values too large for a leaf page).
        public var overflowPages: UInt64 = 0
        /// Entries.
        public var entries: UInt64 = 0

        /// Creates counts.
        public init(depth: Int = 0, branchPages: UInt64 = 0, leafPages: UInt64 = 0, overflowPages: UInt64 = 0, entries: UInt64 = 0) {
            self.depth = depth
            self.branchPages = branchPages
            self.leafPages = leafPages
            self.overflowPages = overflowPages
            self.entries = entries
        }
    }

    /// What one database's record says and what the walk found.
    public struct DatabaseStatistics: Sendable, Hashable {
        /// The database.
        public let database: Database
        /// The raw name of a named database (empty for the others).
        public let nameBytes: [UInt8]
        /// The counts in the database's `MDB_db` record.
        public let recorded: Counts
        /// The counts found by walking it (partial when its tree is damaged).
        public let walked: Counts
    }

    /// The data file walked.
    public let path: String
    /// What the meta pages say, or `nil` when they are damaged.
    public let summary: DataFileSummary?
    /// Everything wrong, in the order found (at most ``problemLimit``; see ``omittedProblems``).
    public let problems: [Problem]
    /// Problems found beyond ``problemLimit`` and not listed.
    public let omittedProblems: Int
    /// The main database, every named database it lists, and the free list.
    public let databases: [DatabaseStatistics]
    /// Pages the free list names.
    public let freePages: UInt64
    /// Pages in `2…last page` that are neither in a tree nor free. LMDB legitimately
    /// has such pages in flight around the last transactions, so they are not damage.
    public let unaccountedPages: UInt64
    /// Pages read (each page at most once).
    public let pagesRead: Int
    /// Remarks that are not damage (such as ``unaccountedPages``).
    public let notes: [String]
    /// When the file or its meta pages are damaged (and nothing was walked): the
    /// same error ``DataFile/inspect(directory:)`` throws.
    public let metaError: DataFileError?

    /// The most problems a report lists.
    public static let problemLimit = 200

    /// Whether the walk found nothing wrong.
    public var isClean: Bool { problems.isEmpty && omittedProblems == 0 }
}

/// A full structural check of an LMDB data file with plain `pread`s: no map,
/// no LMDB call, bounded work and memory whatever the bytes say.
public enum PageWalker {
    /// Walks `directory/data.mdb`. See ``check(dataFile:)``.
    ///
    /// - Throws: ``DataFileError`` with ``DataFileError/Reason/notInitialized`` when
    ///   there is no store at all, or ``DataFileError/Reason/io`` when the file cannot be read.
    public static func check(directory: String) throws(DataFileError) -> PageWalkReport {
        let opened: OpenedDataFile
        do throws(DataFileError) {
            guard let file = try OpenedDataFile.open(directory: directory) else {
                throw DataFileError(reason: .notInitialized, path: directory,
                                    message: "\(directory) holds no LMDB store (no data.mdb, no lock.mdb)")
            }
            opened = file
        } catch where error.isDamage {
            return metaFailure(path: error.path, error)
        }
        return try check(opened)
    }

    /// Walks the data file at `path` (which must be a regular file, not a symbolic link).
    ///
    /// Checks the meta pages as ``DataFile/inspect(directory:)`` does, then, from the
    /// newest meta page, walks the main database, every named database it lists and
    /// the free-page database, reading each page at most once:
    /// - every page number lies in `2…last page`, every page's header carries its
    ///   own number, flags fit the page's place (branch above the recorded depth,
    ///   leaf at it, overflow for large values), `mp_lower`/`mp_upper` are sane and
    ///   every node lies inside its page, with node sizes adding up to the used space;
    /// - keys are in strictly ascending order within and across pages and within
    ///   the separator bounds of the parent branch page;
    /// - overflow runs start with an overflow page, lie within the data and are long
    ///   enough for their value;
    /// - no page is reached twice, across all trees and the free list; free-list
    ///   entries are well formed;
    /// - each database record's depth, page and entry counts match the walk.
    ///
    /// Content problems are listed in the report, never thrown.
    ///
    /// - Throws: ``DataFileError/Reason/io`` when the file cannot be opened or read.
    public static func check(dataFile path: String) throws(DataFileError) -> PageWalkReport {
        let file: OpenedDataFile
        do throws(DataFileError) {
            file = try OpenedDataFile.open(file: path)
        } catch where error.isDamage {
            return metaFailure(path: path, error)
        }
        return try check(file)
    }

    private static func check(_ file: OpenedDataFile) throws(DataFileError) -> PageWalkReport {
        let meta: CheckedMeta
        do throws(DataFileError) {
            meta = try file.readMeta()
        } catch where error.isDamage {
            return metaFailure(path: file.path, error)
        }
        let walk = Walk(file: file, meta: meta)
        return try walk.run()
    }

    private static func metaFailure(path: String, _ error: DataFileError) -> PageWalkReport {
        PageWalkReport(
            path: path, summary: nil,
            problems: [.init(kind: .meta, page: nil, database: .meta, message: error.message)],
            omittedProblems: 0, databases: [], freePages: 0, unaccountedPages: 0, pagesRead: 0,
            notes: [], metaError: error)
    }
}

/// One walk over one file.
private final class Walk {
    typealias Problem = PageWalkReport.Problem
    typealias Database = PageWalkReport.Database
    typealias Counts = PageWalkReport.Counts

    // Owner codes of pages.
    static let unseen: UInt16 = 0
    static let metaOwner: UInt16 = 1
    static let freeListed: UInt16 = 2
    static let firstTree: UInt16 = 3  // + index into `trees`

    let file: OpenedDataFile
    let meta: CheckedMeta
    let pageSize: Int
    let lastPage: UInt64
    /// Who reached each page first (one entry per page 0…last page).
    var owner: [UInt16]
    /// The databases that own pages, by owner code − `firstTree`.
    var trees: [Database] = []
    var problems: [Problem] = []
    var omitted = 0
    var pagesRead = 0
    var freePages: UInt64 = 0
    /// One page per tree level, plus one for overflow headers.
    let arena: UnsafeMutableRawBufferPointer
    var lastLeafKey: [UInt8] = []
    var hasLastLeafKey = false
    /// Scratch for reading free-page lists out of overflow pages.
    var chunk: [UInt8] = []

    init(file: OpenedDataFile, meta: CheckedMeta) {
        self.file = file
        self.meta = meta
        pageSize = meta.summary.pageSize
        lastPage = meta.summary.lastPage
        // The meta checks guarantee (last page + 1) × page size ≤ file size, so this is bounded by the file.
        owner = [UInt16](repeating: 0, count: Int(lastPage) + 1)
        owner[0] = Self.metaOwner
        owner[1] = Self.metaOwner
        arena = .allocate(byteCount: (MDBFormat.maxDepth + 1) * meta.summary.pageSize, alignment: 16)
        arena.initializeMemory(as: UInt8.self, repeating: 0)
        lastLeafKey.reserveCapacity(MDBFormat.maxKeySize + 1)
    }

    deinit { arena.deallocate() }

    func run() throws(DataFileError) -> PageWalkReport {
        let newest = meta.newest
        var statistics: [PageWalkReport.DatabaseStatistics] = []

        // The main database, collecting the named databases it lists.
        var named: [(name: [UInt8], record: DBRecord, page: UInt64)] = []
        let mainWalk = try walkTree(newest.main, database: .main, integerKeys: false) { leaf throws(DataFileError) in
            guard leaf.flags & MDBFormat.fSubData != 0 else {
                report(.unsupported, leaf.page, .main,
                       "node \(leaf.index) is a plain value, not a named-database record (this package keeps only named databases in the main database)")
                return
            }
            guard leaf.flags == MDBFormat.fSubData, leaf.dataSize == MDBFormat.dbRecordSize, leaf.inlineData.count == MDBFormat.dbRecordSize else {
                report(.badDatabaseRecord, leaf.page, .main,
                       "node \(leaf.index) is a named-database record with flags 0x\(String(leaf.flags, radix: 16)) and \(leaf.dataSize) bytes of data (expected exactly F_SUBDATA and \(MDBFormat.dbRecordSize) bytes)")
                return
            }
            named.append((name: leaf.key.bytes, record: DBRecord(leaf.inlineData, at: 0), page: leaf.page))
        }
        statistics.append(.init(database: .main, nameBytes: [], recorded: counts(of: newest.main), walked: mainWalk))

        // Every named database.
        for entry in named {
            let name = String(decoding: entry.name, as: UTF8.self)
            let database = Database.named(name)
            if entry.record.flags != 0 {
                report(.unsupported, entry.page, database,
                       "the database record has flags 0x\(String(entry.record.flags, radix: 16)) (sorted duplicates or a custom key order; this package creates databases with none)")
                statistics.append(.init(database: database, nameBytes: entry.name, recorded: counts(of: entry.record), walked: Counts()))
                continue
            }
            let walked = try walkTree(entry.record, database: database, integerKeys: false) { _ throws(DataFileError) in }
            statistics.append(.init(database: database, nameBytes: entry.name, recorded: counts(of: entry.record), walked: walked))
        }

        // The free-page database and the pages it lists.
        let freeWalk = try walkTree(newest.free, database: .freeList, integerKeys: true) { leaf throws(DataFileError) in
            try readFreeList(leaf)
        }
        statistics.append(.init(database: .freeList, nameBytes: [], recorded: counts(of: newest.free), walked: freeWalk))

        var unaccounted: UInt64 = 0
        var firstUnaccounted: [UInt64] = []
        if owner.count > 2 {
            for pgno in 2..<owner.count where owner[pgno] == Self.unseen {
                unaccounted += 1
                if firstUnaccounted.count < 8 { firstUnaccounted.append(UInt64(pgno)) }
            }
        }
        var notes: [String] = []
        if unaccounted > 0 {
            notes.append("\(unaccounted) page(s) are neither in a tree nor in the free list (for example \(firstUnaccounted.map(String.init).joined(separator: ", "))): pages in flight around the last transactions, or leaked; not damage")
        }
        return PageWalkReport(path: file.path, summary: meta.summary, problems: problems, omittedProblems: omitted,
                              databases: statistics, freePages: freePages, unaccountedPages: unaccounted,
                              pagesRead: pagesRead, notes: notes, metaError: nil)
    }

    private func counts(of record: DBRecord) -> Counts {
        Counts(depth: Int(record.depth), branchPages: record.branchPages, leafPages: record.leafPages,
               overflowPages: record.overflowPages, entries: record.entries)
    }

    // MARK: Problems and ownership

    func report(_ kind: Problem.Kind, _ page: UInt64?, _ database: Database, _ message: String) {
        if problems.count < PageWalkReport.problemLimit {
            problems.append(Problem(kind: kind, page: page, database: database, message: message))
        } else {
            omitted += 1
        }
    }

    private func ownerName(_ code: UInt16) -> String {
        switch code {
        case Self.metaOwner: return "the meta pages"
        case Self.freeListed: return "the free list (as a free page)"
        default:
            let index = Int(code - Self.firstTree)
            return index < trees.count ? "database \(trees[index])" : "another tree"
        }
    }

    /// Records `pgno` as belonging to `code`; reports and returns false when it is
    /// out of range or already belongs somewhere. `context` says who points at it.
    func claim(_ pgno: UInt64, _ code: UInt16, _ database: Database, _ context: String) -> Bool {
        guard pgno >= 2, pgno <= lastPage else {
            report(.pageOutOfRange, pgno, database, "\(context) names page \(pgno), outside the data (pages 2…\(lastPage))")
            return false
        }
        let index = Int(pgno)
        let previous = owner[index]
        guard previous == Self.unseen else {
            report(.pageReused, pgno, database, "\(context) names page \(pgno), which already belongs to \(ownerName(previous))")
            return false
        }
        owner[index] = code
        return true
    }

    // MARK: Reading

    /// Arena slot `slot` (one page).
    private func slot(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: arena[(slot * pageSize) ..< ((slot + 1) * pageSize)])
    }

    /// Reads page `pgno` into arena slot `slotIndex`; `nil` (reported) on a short read.
    private func readPage(_ pgno: UInt64, into slotIndex: Int, _ database: Database) throws(DataFileError) -> ByteView? {
        let buffer = slot(slotIndex)
        let got = try file.read(into: buffer, at: pgno &* UInt64(pageSize))
        pagesRead += 1
        guard got == pageSize else {
            report(.pageOutOfRange, pgno, database, "page \(pgno) lies past the end of the file")
            return nil
        }
        return ByteView(UnsafeRawBufferPointer(buffer))
    }

    // MARK: Trees

    struct Leaf {
        let page: UInt64
        let index: Int
        let key: ByteView
        let flags: UInt16
        let dataSize: Int
        /// The value when it is stored in the page (empty for a large value).
        let inlineData: ByteView
        /// The first overflow page of a large value, after its run was checked.
        let overflowPage: UInt64?
    }

    struct Frame {
        let pgno: UInt64
        let level: Int
        let keys: Int
        var next: Int
        let lower: ByteView?
        let upper: ByteView?
    }

    /// Walks one B-tree depth first, in key order; returns what it counted.
    func walkTree(_ record: DBRecord, database: Database, integerKeys: Bool,
                  onLeaf: (Leaf) throws(DataFileError) -> Void) throws(DataFileError) -> Counts {
        var walked = Counts()
        guard trees.count < Int(UInt16.max - Self.firstTree) else {
            report(.unsupported, nil, database, "too many named databases to check")
            return walked
        }
        let code = Self.firstTree + UInt16(trees.count)
        trees.append(database)
        hasLastLeafKey = false
        let depth = Int(record.depth)
        var damaged = false
        defer {
            if !damaged {
                let recorded = counts(of: record)
                if recorded != walked {
                    report(.countMismatch, nil, database,
                           "the database record says depth \(recorded.depth), \(recorded.branchPages) branch, \(recorded.leafPages) leaf and \(recorded.overflowPages) overflow pages and \(recorded.entries) entries; the walk found depth \(walked.depth), \(walked.branchPages), \(walked.leafPages), \(walked.overflowPages) and \(walked.entries)")
                }
            }
        }
        if record.root == MDBFormat.invalidPage { return walked }
        guard depth >= 1, depth <= MDBFormat.maxDepth else {
            report(.badDatabaseRecord, record.root, database, "the database record says the tree is \(depth) levels deep (must be 1…\(MDBFormat.maxDepth) for a non-empty tree)")
            damaged = true
            return walked
        }
        walked.depth = depth
        let problemsBefore = problems.count + omitted
        defer { if problems.count + omitted != problemsBefore { damaged = true } }

        guard claim(record.root, code, database, "the database record") else { return walked }
        var stack: [Frame] = []
        stack.reserveCapacity(depth)
        if let keys = try loadTreePage(record.root, level: 1, depth: depth, code: code, database: database,
                                       integerKeys: integerKeys, lower: nil, upper: nil, counts: &walked, onLeaf: onLeaf),
           depth > 1 {
            stack.append(Frame(pgno: record.root, level: 1, keys: keys, next: 0, lower: nil, upper: nil))
        }
        while let top = stack.last {
            if top.next >= top.keys {
                stack.removeLast()
                continue
            }
            let i = top.next
            stack[stack.count - 1].next += 1
            let page = ByteView(UnsafeRawBufferPointer(slot(top.level - 1)))
            let node = Int(page.u16(MDBFormat.pageHeaderSize + 2 * i))
            let child = UInt64(page.u16(node)) | UInt64(page.u16(node + 2)) << 16 | UInt64(page.u16(node + 4)) << 32
            let lower = i == 0 ? top.lower : key(page, node)
            let upper = i + 1 < top.keys ? key(page, Int(page.u16(MDBFormat.pageHeaderSize + 2 * (i + 1)))) : top.upper
            guard claim(child, code, database, "branch page \(top.pgno) node \(i)") else { continue }
            if let keys = try loadTreePage(child, level: top.level + 1, depth: depth, code: code, database: database,
                                           integerKeys: integerKeys, lower: lower, upper: upper, counts: &walked, onLeaf: onLeaf),
               top.level + 1 < depth {
                stack.append(Frame(pgno: child, level: top.level + 1, keys: keys, next: 0, lower: lower, upper: upper))
            }
        }
        return walked
    }

    @inline(__always) private func key(_ page: ByteView, _ node: Int) -> ByteView {
        page.slice(node + MDBFormat.nodeHeaderSize, Int(page.u16(node + 6)))
    }

    @inline(__always) private func compare(_ a: ByteView, _ b: ByteView, integerKeys: Bool) -> Int {
        if integerKeys, a.count == 8, b.count == 8 {
            let x = a.u64(0), y = b.u64(0)
            return x == y ? 0 : (x < y ? -1 : 1)
        }
        return ByteView.compare(a, b)
    }

    /// Reads and checks one tree page (already claimed); returns its key count
    /// when it is a sound branch or leaf page, `nil` (reported) otherwise.
    private func loadTreePage(_ pgno: UInt64, level: Int, depth: Int, code: UInt16, database: Database, integerKeys: Bool,
                              lower: ByteView?, upper: ByteView?, counts: inout Counts,
                              onLeaf: (Leaf) throws(DataFileError) -> Void) throws(DataFileError) -> Int? {
        guard let page = try readPage(pgno, into: level - 1, database) else { return nil }
        let header = page.u64(0)
        guard header == pgno else {
            report(.pageNumberMismatch, pgno, database, "the page header says it is page \(header)")
            return nil
        }
        let flags = page.u16(10)
        let isLeaf: Bool
        switch flags {
        case MDBFormat.pBranch: isLeaf = false
        case MDBFormat.pLeaf: isLeaf = true
        case MDBFormat.pLeaf | MDBFormat.pLeaf2, MDBFormat.pLeaf | MDBFormat.pSubpage:
            report(.unsupported, pgno, database, "a sorted-duplicate page (flags 0x\(String(flags, radix: 16))) in a tree")
            return nil
        default:
            report(.badPageFlags, pgno, database, "flags 0x\(String(flags, radix: 16)) at level \(level) of a \(depth)-level tree (expected \(level < depth ? "P_BRANCH" : "P_LEAF"))")
            return nil
        }
        if isLeaf != (level == depth) {
            report(.depthMismatch, pgno, database,
                   "a \(isLeaf ? "leaf" : "branch") page at level \(level), but the database record says the tree is \(depth) levels deep")
            return nil
        }
        let lowerBound = Int(page.u16(12)), upperBound = Int(page.u16(14))
        let header16 = MDBFormat.pageHeaderSize
        guard lowerBound >= header16, lowerBound <= upperBound, upperBound <= pageSize, (lowerBound - header16) % 2 == 0 else {
            report(.badPageBounds, pgno, database, "mp_lower \(lowerBound) and mp_upper \(upperBound) (need \(header16) ≤ lower ≤ upper ≤ \(pageSize), lower − \(header16) even)")
            return nil
        }
        let keys = (lowerBound - header16) / 2
        guard keys >= 1 else {
            report(.emptyPage, pgno, database, "a \(isLeaf ? "leaf" : "branch") page with no keys")
            return nil
        }
        // Nodes: every offset inside [upper, page size), every node inside the page,
        // node sizes adding up to the used space.
        var used = 0
        for i in 0 ..< keys {
            let node = Int(page.u16(header16 + 2 * i))
            guard node >= upperBound, node + MDBFormat.nodeHeaderSize <= pageSize else {
                report(.badNode, pgno, database, "node \(i) is at offset \(node), outside the node area \(upperBound)…\(pageSize)")
                return nil
            }
            let keySize = Int(page.u16(node + 6))
            var size = MDBFormat.nodeHeaderSize + keySize
            if isLeaf {
                let nodeFlags = page.u16(node + 4)
                let dataSize = Int(page.u16(node)) | Int(page.u16(node + 2)) << 16
                size += nodeFlags & MDBFormat.fBigData != 0 ? 8 : dataSize
            }
            guard node + size <= pageSize else {
                report(.badNode, pgno, database, "node \(i) at offset \(node) needs \(size) bytes, past the end of the page")
                return nil
            }
            used += (size + 1) & ~1
        }
        guard used == pageSize - upperBound else {
            report(.badNode, pgno, database, "the nodes take \(used) bytes but mp_upper \(upperBound) leaves \(pageSize - upperBound) for them")
            return nil
        }
        // Keys: sizes, order, bounds. A branch page's first key is empty by convention: skip it.
        let first = isLeaf ? 0 : 1
        var previous: ByteView?
        for i in first ..< keys {
            let node = Int(page.u16(header16 + 2 * i))
            let k = key(page, node)
            guard k.count >= 1, k.count <= MDBFormat.maxKeySize else {
                report(.badKeySize, pgno, database, "node \(i) has a \(k.count)-byte key (LMDB keys are 1…\(MDBFormat.maxKeySize) bytes)")
                return nil
            }
            if integerKeys, k.count != 8 {
                report(.badKeySize, pgno, database, "node \(i) has a \(k.count)-byte key where a transaction ID (8 bytes) belongs")
                return nil
            }
            if let previous, compare(previous, k, integerKeys: integerKeys) >= 0 {
                report(.keyOrder, pgno, database, "key \(i) is not greater than key \(i - 1)")
                return nil
            }
            if i == first {
                if let lower, compare(k, lower, integerKeys: integerKeys) < 0 {
                    report(.keyOutOfBounds, pgno, database, "the first key sorts before the separator of its parent branch page")
                    return nil
                }
                if isLeaf, hasLastLeafKey {
                    let last = lastLeafKey.withUnsafeBytes { compare(ByteView($0), k, integerKeys: integerKeys) }
                    if last >= 0 {
                        report(.keyOrder, pgno, database, "the first key is not greater than the last key of the previous leaf page")
                        return nil
                    }
                }
            }
            if i == keys - 1, let upper, compare(k, upper, integerKeys: integerKeys) >= 0 {
                report(.keyOutOfBounds, pgno, database, "the last key does not sort before the next separator of its parent branch page")
                return nil
            }
            previous = k
        }
        if !isLeaf {
            counts.branchPages += 1
            return keys
        }
        counts.leafPages += 1
        if let previous, let base = previous.base {
            lastLeafKey.removeAll(keepingCapacity: true)
            lastLeafKey.append(contentsOf: UnsafeRawBufferPointer(start: base, count: previous.count))
            hasLastLeafKey = true
        }
        // Leaf nodes: flags, large values.
        for i in 0 ..< keys {
            let node = Int(page.u16(header16 + 2 * i))
            let nodeFlags = page.u16(node + 4)
            let keySize = Int(page.u16(node + 6))
            let dataSize = Int(page.u16(node)) | Int(page.u16(node + 2)) << 16
            let allowed = MDBFormat.fBigData | (database == .main ? MDBFormat.fSubData : 0)
            if nodeFlags & MDBFormat.fDupData != 0 {
                report(.unsupported, pgno, database, "node \(i) holds sorted duplicates (F_DUPDATA)")
                continue
            }
            guard nodeFlags & ~allowed == 0 else {
                report(.badNode, pgno, database, "node \(i) has flags 0x\(String(nodeFlags, radix: 16))")
                continue
            }
            counts.entries += 1
            let dataStart = node + MDBFormat.nodeHeaderSize + keySize
            var overflow: UInt64?
            if nodeFlags & MDBFormat.fBigData != 0 {
                let first = page.u64(dataStart)
                guard let pages = try checkOverflow(first, dataSize: dataSize, code: code, database: database,
                                                    context: "leaf page \(pgno) node \(i)") else { continue }
                counts.overflowPages += pages
                overflow = first
            }
            try onLeaf(Leaf(page: pgno, index: i, key: key(page, node), flags: nodeFlags, dataSize: dataSize,
                            inlineData: overflow == nil ? page.slice(dataStart, dataSize) : ByteView(base: nil, count: 0),
                            overflowPage: overflow))
        }
        return keys
    }

    /// Checks the overflow run of a large value; returns its length in pages.
    private func checkOverflow(_ first: UInt64, dataSize: Int, code: UInt16, database: Database,
                               context: String) throws(DataFileError) -> UInt64? {
        guard claim(first, code, database, context + " (a large value)") else { return nil }
        let headerSlot = UnsafeMutableRawBufferPointer(rebasing: slot(MDBFormat.maxDepth)[0 ..< MDBFormat.pageHeaderSize])
        let got = try file.read(into: headerSlot, at: first &* UInt64(pageSize))
        pagesRead += 1
        guard got == MDBFormat.pageHeaderSize else {
            report(.pageOutOfRange, first, database, "overflow page \(first) lies past the end of the file")
            return nil
        }
        let header = ByteView(UnsafeRawBufferPointer(headerSlot))
        let pgno = header.u64(0), flags = header.u16(10), pages = UInt64(header.u32(12))
        guard pgno == first else {
            report(.pageNumberMismatch, first, database, "overflow page header says it is page \(pgno)")
            return nil
        }
        guard flags == MDBFormat.pOverflow else {
            report(.badOverflow, first, database, "\(context) points here for a large value, but the page's flags are 0x\(String(flags, radix: 16)), not P_OVERFLOW")
            return nil
        }
        guard pages >= 1, pages - 1 <= lastPage - first else {
            report(.badOverflow, first, database, "an overflow run of \(pages) pages from page \(first) (must be at least 1 and end by page \(lastPage))")
            return nil
        }
        let (capacity, o) = pages.multipliedReportingOverflow(by: UInt64(pageSize))
        if !o, capacity < UInt64(MDBFormat.pageHeaderSize + dataSize) {
            report(.badOverflow, first, database, "a \(dataSize)-byte value does not fit in an overflow run of \(pages) page(s)")
            return nil
        }
        var next = first + 1
        while next < first + pages {
            guard claim(next, code, database, "the overflow run from page \(first)") else { return nil }
            next += 1
        }
        return pages
    }

    // MARK: Free list

    /// Checks one free-list record: key a transaction ID, value an ID list (count, then page numbers, descending).
    private func readFreeList(_ leaf: Leaf) throws(DataFileError) {
        let txnid = leaf.key.u64(0)
        if txnid > meta.newest.txnid {
            report(.badFreeList, leaf.page, .freeList, "node \(leaf.index) records pages freed by transaction \(txnid), after the newest (\(meta.newest.txnid))")
        }
        guard leaf.dataSize >= 8, leaf.dataSize % 8 == 0 else {
            report(.badFreeList, leaf.page, .freeList, "node \(leaf.index) (transaction \(txnid)) has a \(leaf.dataSize)-byte page list (must be a whole number of 8-byte page numbers)")
            return
        }
        let capacity = UInt64(leaf.dataSize / 8 - 1)
        var reader = FreeListReader(walk: self, leaf: leaf)
        let count = try reader.next()
        guard count <= capacity else {
            report(.badFreeList, leaf.page, .freeList, "node \(leaf.index) (transaction \(txnid)) says it lists \(count) pages but has room for \(capacity)")
            return
        }
        var previous = UInt64.max
        for _ in 0 ..< count {
            let pgno = try reader.next()
            guard pgno < previous else {
                report(.badFreeList, leaf.page, .freeList, "node \(leaf.index) (transaction \(txnid)) lists page \(pgno) after page \(previous) (the list must descend)")
                return
            }
            previous = pgno
            if claim(pgno, Self.freeListed, .freeList, "the free list (transaction \(txnid))") { freePages += 1 }
        }
    }

    /// Reads 8-byte words of a free-list value, from its leaf or in chunks from its overflow run.
    struct FreeListReader {
        let walk: Walk
        let leaf: Leaf
        var offset = 0
        var chunkStart = 0
        var chunkCount = 0

        init(walk: Walk, leaf: Leaf) {
            self.walk = walk
            self.leaf = leaf
        }

        mutating func next() throws(DataFileError) -> UInt64 {
            defer { offset += 8 }
            guard let first = leaf.overflowPage else { return leaf.inlineData.u64(offset) }
            if offset < chunkStart || offset + 8 > chunkStart + chunkCount {
                let chunkSize = 1 << 16
                if walk.chunk.count != chunkSize { walk.chunk = [UInt8](repeating: 0, count: chunkSize) }
                let length = min(chunkSize, leaf.dataSize - offset)
                let position = first &* UInt64(walk.pageSize) &+ UInt64(MDBFormat.pageHeaderSize + offset)
                let file = walk.file
                let got = try walk.chunk.withUnsafeMutableBytes { buffer in
                    Result { () throws(DataFileError) -> Int in
                        try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0 ..< max(0, length)]), at: position)
                    }
                }.get()
                chunkStart = offset
                chunkCount = got
            }
            return walk.chunk.withUnsafeBytes { ByteView($0).u64(offset - chunkStart) }
        }
    }
}

extension ByteView {
    /// A copy of the bytes.
    var bytes: [UInt8] {
        guard let base, count > 0 else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: base, count: count))
    }
}
