#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

// Plain-read checks of an LMDB data file, made before LMDB maps it.
//
// LMDB 0.9 trusts its file: a `data.mdb` shorter than its meta pages claim gives
// SIGBUS on first touch, and `mdb_env_open` on an empty file writes a new store
// into it. Everything here reads with `pread` from a descriptor opened
// `O_RDONLY | O_NOFOLLOW`, never maps the file and never calls LMDB.
//
// On-disk layout (liblmdb 0.9.24, x86_64, little-endian, 64-bit `pgno_t`/`size_t`):
// - page header (`MDB_page`, 16 bytes): `mp_pgno` u64 @0, `mp_pad` u16 @8,
//   `mp_flags` u16 @10, `mp_lower` u16 @12, `mp_upper` u16 @14 (for an overflow
//   page, `mp_pages` u32 @12 instead of lower/upper);
// - meta (`MDB_meta`, after the header of pages 0 and 1): `mm_magic` u32 @16,
//   `mm_version` u32 @20, `mm_address` @24, `mm_mapsize` @32, `mm_dbs[0]` (free
//   list) @40, `mm_dbs[1]` (main) @88, `mm_last_pg` @136, `mm_txnid` @144;
// - `MDB_db` (48 bytes): `md_pad` u32 @0 (the page size, in the free list's
//   record), `md_flags` u16 @4, `md_depth` u16 @6, `md_branch_pages` @8,
//   `md_leaf_pages` @16, `md_overflow_pages` @24, `md_entries` @32, `md_root` @40.

/// Constants of LMDB 0.9's file format.
enum MDBFormat {
    static let pageHeaderSize = 16
    static let metaSize = 152
    static let dbRecordSize = 48
    static let nodeHeaderSize = 8
    static let magic: UInt32 = 0xBEEF_C0DE
    static let dataVersion: UInt32 = 1
    /// `P_INVALID`: the root of an empty tree.
    static let invalidPage = UInt64.max
    /// LMDB 0.9 builds without `MDB_DEVEL` have `PAGEBASE == 0`, so a page offset
    /// must fit in the 16-bit `mp_upper`: `MAX_PAGESIZE` is 0x8000.
    static let maxPageSize = 0x8000
    static let minPageSize = 512
    /// `MDB_MAXKEYSIZE` of 0.9 builds.
    static let maxKeySize = 511
    /// `CURSOR_STACK`: LMDB cannot descend deeper than this.
    static let maxDepth = 32

    // Page flags (`mp_flags`).
    static let pBranch: UInt16 = 0x01
    static let pLeaf: UInt16 = 0x02
    static let pOverflow: UInt16 = 0x04
    static let pMeta: UInt16 = 0x08
    static let pDirty: UInt16 = 0x10
    static let pLeaf2: UInt16 = 0x20
    static let pSubpage: UInt16 = 0x40
    static let pLoose: UInt16 = 0x4000
    static let pKeep: UInt16 = 0x8000

    // Node flags (`mn_flags` of a leaf node).
    static let fBigData: UInt16 = 0x01
    static let fSubData: UInt16 = 0x02
    static let fDupData: UInt16 = 0x04

    // Database flags (`md_flags`).
    static let integerKey: UInt16 = 0x08
    /// What the free-page database's record may hold: `MDB_INTEGERKEY` plus the
    /// environment flags LMDB keeps there (`MDB_FIXEDMAP` 0x01, `MDB_NOSUBDIR` 0x4000).
    static let allowedFreeFlags: UInt16 = integerKey | 0x01 | 0x4000
}

/// A damaged or unusable LMDB data file, found by reading it without LMDB.
///
/// Like ``LMDBError`` this is a small value: a stable, machine-readable
/// ``reason``, the ``path`` of the file or directory concerned, and a
/// human-readable ``message`` that names the path and says exactly what is wrong.
public struct DataFileError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, machine-readable name for what is wrong.
    public struct Reason: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The stable name (for example `truncated` or `bad-magic`).
        public let rawValue: String
        /// Creates a reason from its stable name.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The stable name.
        public var description: String { rawValue }

        /// The store path exists but is not a directory.
        public static let notADirectory = Reason(rawValue: "not-a-directory")
        /// `data.mdb` is missing although `lock.mdb` exists.
        public static let missing = Reason(rawValue: "missing")
        /// `data.mdb` is a symbolic link, a directory, a FIFO or another non-regular file.
        public static let notRegularFile = Reason(rawValue: "not-regular-file")
        /// `data.mdb` is empty (zero bytes).
        public static let empty = Reason(rawValue: "empty")
        /// `data.mdb` is shorter than its meta pages say it must be.
        public static let truncated = Reason(rawValue: "truncated")
        /// A meta page does not carry the `P_META` flag or its own page number.
        public static let notMetaPage = Reason(rawValue: "not-meta-page")
        /// A meta page's magic number is not LMDB's `0xBEEFC0DE`.
        public static let badMagic = Reason(rawValue: "bad-magic")
        /// A meta page names a data format version other than 1.
        public static let badVersion = Reason(rawValue: "bad-version")
        /// A meta page's page size is not a power of two in 512…32768.
        public static let badPageSize = Reason(rawValue: "bad-page-size")
        /// The two meta pages disagree on the page size.
        public static let pageSizeMismatch = Reason(rawValue: "page-size-mismatch")
        /// A meta page's last page number is below 1.
        public static let badLastPage = Reason(rawValue: "bad-last-page")
        /// The newest meta page's transaction ID belongs in the other meta page.
        public static let metaSlotMismatch = Reason(rawValue: "meta-slot-mismatch")
        /// The two meta pages' transaction IDs are more than one apart: LMDB writes
        /// commit `t` into meta page `t & 1`, so the other holds `t − 1` (both 0 before
        /// the first commit). A larger gap is a damaged ID, which would make LMDB read
        /// an older commit without a word.
        public static let transactionGap = Reason(rawValue: "transaction-gap")
        /// The newest meta page names a root page outside its data.
        public static let badRoot = Reason(rawValue: "bad-root")
        /// The newest meta page gives the free-page or main database flags LMDB
        /// does not put there (`MDB_DUPSORT` on the free list makes LMDB abort) or
        /// that this package never sets (any flag on the main database).
        public static let badFlags = Reason(rawValue: "bad-flags")
        /// There is no store at all (only thrown by ``PageWalker``; ``DataFile/inspect(directory:)``
        /// returns ``DataFile/Inspection/notInitialized`` instead).
        public static let notInitialized = Reason(rawValue: "not-initialized")
        /// The operating system refused to open, examine or read the file (see ``DataFileError/errno``).
        public static let io = Reason(rawValue: "io")
    }

    /// What is wrong.
    public let reason: Reason
    /// The file or directory concerned.
    public let path: String
    /// A human-readable account that names ``path``.
    public let message: String
    /// The `errno` of a failed system call, for ``Reason/io``.
    public let errno: Int32?

    /// Creates an error.
    public init(reason: Reason, path: String, message: String, errno: Int32? = nil) {
        self.reason = reason
        self.path = path
        self.message = message
        self.errno = errno
    }

    /// `reason: message`.
    public var description: String { "\(reason): \(message)" }

    /// Whether the error means the file is damaged (as opposed to the OS
    /// refusing access, or there being no store at all).
    public var isDamage: Bool { reason != .io && reason != .notInitialized }

    static func io(_ code: Int32, _ what: String, _ path: String) -> DataFileError {
        DataFileError(reason: .io, path: path, message: "\(path): \(what) failed: \(String(cString: strerror(code)))", errno: code)
    }
}

/// What the meta pages of a sound data file say, from ``DataFile/inspect(directory:)``.
public struct DataFileSummary: Sendable, Hashable {
    /// The path of `data.mdb`.
    public let path: String
    /// The file's size in bytes.
    public let fileSize: Int
    /// The database page size in bytes.
    public let pageSize: Int
    /// Which meta page (0 or 1) is the newest, the one LMDB will use.
    public let newestMeta: Int
    /// The newest meta page's transaction ID.
    public let transactionID: UInt64
    /// The newest meta page's last used page number.
    public let lastPage: UInt64
    /// The newest meta page's map size in bytes.
    public let mapSize: UInt64
    /// The root page of the main database, or `nil` when it is empty.
    public let mainRoot: UInt64?
    /// The number of entries in the main database (one per named database, plus any plain keys).
    public let mainEntries: UInt64
    /// The root page of the free-page database, or `nil` when it is empty.
    public let freeRoot: UInt64?
}

/// Plain-read checks of the data file of an LMDB environment.
public enum DataFile {
    /// The outcome of ``inspect(directory:)`` for a directory without damage.
    public enum Inspection: Sendable, Hashable {
        /// There is no store: the directory is missing, or holds neither `data.mdb` nor `lock.mdb`.
        case notInitialized
        /// `data.mdb` passed every check; its meta pages say this.
        case valid(DataFileSummary)
    }

    /// Checks the meta pages of `directory/data.mdb` with a few `pread`s, before
    /// LMDB is allowed to map the file.
    ///
    /// The file must be a regular file (not a symbolic link, directory or FIFO),
    /// hold two meta pages with the `P_META` flag, LMDB's magic and data version 1
    /// and the same power-of-two page size (512…32768), each with a last page of at
    /// least 1, and be at least `(max last page + 1) × page size` bytes long. The
    /// newest meta page (highest transaction ID) must sit in the slot its ID
    /// belongs to, its two root pages must lie within its data, the free-page
    /// database's flags must be LMDB's own and the main database's flags none
    /// (this package never sets any).
    ///
    /// Never maps the file, never calls LMDB, never writes.
    ///
    /// - Returns: ``Inspection/notInitialized`` when there is no store at all,
    ///   otherwise ``Inspection/valid(_:)`` with what the meta pages say.
    /// - Throws: ``DataFileError`` naming the file and what is wrong with it
    ///   (`data.mdb` missing next to `lock.mdb` is damage too), or ``DataFileError/Reason/io``.
    public static func inspect(directory: String) throws(DataFileError) -> Inspection {
        guard let file = try OpenedDataFile.open(directory: directory) else { return .notInitialized }
        return .valid(try file.readMeta().summary)
    }
}

/// One meta page, decoded.
struct MetaPage {
    var pgno: UInt64
    var flags: UInt16
    var magic: UInt32
    var version: UInt32
    var mapSize: UInt64
    var free: DBRecord
    var main: DBRecord
    var lastPage: UInt64
    var txnid: UInt64
    var pageSize: Int { Int(free.pad) }

    init(_ bytes: ByteView) {
        pgno = bytes.u64(0)
        flags = bytes.u16(10)
        magic = bytes.u32(16)
        version = bytes.u32(20)
        mapSize = bytes.u64(32)
        free = DBRecord(bytes, at: 40)
        main = DBRecord(bytes, at: 88)
        lastPage = bytes.u64(136)
        txnid = bytes.u64(144)
    }
}

/// An `MDB_db` record.
struct DBRecord: Sendable, Hashable {
    var pad: UInt32
    var flags: UInt16
    var depth: UInt16
    var branchPages: UInt64
    var leafPages: UInt64
    var overflowPages: UInt64
    var entries: UInt64
    var root: UInt64

    init(_ bytes: ByteView, at offset: Int) {
        pad = bytes.u32(offset)
        flags = bytes.u16(offset + 4)
        depth = bytes.u16(offset + 6)
        branchPages = bytes.u64(offset + 8)
        leafPages = bytes.u64(offset + 16)
        overflowPages = bytes.u64(offset + 24)
        entries = bytes.u64(offset + 32)
        root = bytes.u64(offset + 40)
    }
}

/// Both meta pages of a file that passed the meta checks.
struct CheckedMeta {
    let metas: [MetaPage]
    let newestIndex: Int
    let summary: DataFileSummary
    var newest: MetaPage { metas[newestIndex] }
}

/// A little-endian reader over bytes in memory that never reads out of bounds:
/// an access past the end yields 0 (callers check bounds first; this is the backstop).
struct ByteView {
    let base: UnsafeRawPointer?
    let count: Int

    init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress
        count = buffer.count
    }

    init(base: UnsafeRawPointer?, count: Int) {
        self.base = base
        self.count = count
    }

    @inline(__always) func u8(_ offset: Int) -> UInt8 {
        guard let base, offset >= 0, offset < count else { return 0 }
        return base.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inline(__always) func u16(_ offset: Int) -> UInt16 {
        guard let base, offset >= 0, offset <= count - 2 else { return 0 }
        return UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always) func u32(_ offset: Int) -> UInt32 {
        guard let base, offset >= 0, offset <= count - 4 else { return 0 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always) func u64(_ offset: Int) -> UInt64 {
        guard let base, offset >= 0, offset <= count - 8 else { return 0 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The bytes `offset ..< offset + length`, or an empty view when out of bounds.
    @inline(__always) func slice(_ offset: Int, _ length: Int) -> ByteView {
        guard let base, offset >= 0, length >= 0, offset <= count, length <= count - offset else {
            return ByteView(base: nil, count: 0)
        }
        return ByteView(base: base + offset, count: length)
    }

    /// memcmp order, a shorter key that is a prefix of a longer one being smaller.
    @inline(__always) static func compare(_ a: ByteView, _ b: ByteView) -> Int {
        let common = min(a.count, b.count)
        if common > 0, let pa = a.base, let pb = b.base {
            let c = memcmp(pa, pb, common)
            if c != 0 { return c < 0 ? -1 : 1 }
        }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }
}

/// Opens `path` read-only, without following a symbolic link, without blocking on a FIFO.
func openNoFollow(_ path: String) -> Int32 {
    #if canImport(Glibc)
    Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
    #else
    Darwin.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
    #endif
}

/// `data.mdb`, opened read-only without following links.
final class OpenedDataFile {
    let path: String
    let fd: Int32
    /// The file's length when last looked at (see ``refreshSize()``).
    private(set) var size: Int

    private init(path: String, fd: Int32, size: Int) {
        self.path = path
        self.fd = fd
        self.size = size
    }

    deinit { close(fd) }

    /// Opens `directory/data.mdb`; `nil` when there is no store at all.
    static func open(directory: String) throws(DataFileError) -> OpenedDataFile? {
        var st = stat()
        if faultable(.dataFile, { stat(directory, &st) }) != 0 {
            let code = errno
            if code == ENOENT { return nil }
            throw .io(code, "stat", directory)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw DataFileError(reason: .notADirectory, path: directory, message: "\(directory) is not a directory")
        }
        let dataPath = directory.hasSuffix("/") ? directory + "data.mdb" : directory + "/data.mdb"
        let lockPath = directory.hasSuffix("/") ? directory + "lock.mdb" : directory + "/lock.mdb"
        if faultable(.dataFile, { lstat(dataPath, &st) }) != 0 {
            let code = errno
            guard code == ENOENT else { throw .io(code, "lstat", dataPath) }
            var lockStat = stat()
            if faultable(.dataFile, { lstat(lockPath, &lockStat) }) != 0 {
                let lockCode = errno
                if lockCode == ENOENT { return nil }
                throw .io(lockCode, "lstat", lockPath)
            }
            throw DataFileError(reason: .missing, path: dataPath,
                                message: "\(dataPath) is missing but \(lockPath) exists: the data file was removed or never written")
        }
        return try open(file: dataPath)
    }

    /// Opens the data file at `path`, refusing anything but a regular file.
    static func open(file path: String) throws(DataFileError) -> OpenedDataFile {
        var st = stat()
        if faultable(.dataFile, { lstat(path, &st) }) != 0 { throw .io(errno, "lstat", path) }
        try requireRegular(st.st_mode, path)
        let fd = faultable(.dataFile) { openNoFollow(path) }
        if fd < 0 {
            let code = errno
            if code == ELOOP {
                throw DataFileError(reason: .notRegularFile, path: path, message: "\(path) is a symbolic link, not the data file itself")
            }
            throw .io(code, "open", path)
        }
        var fst = stat()
        if faultable(.dataFile, { fstat(fd, &fst) }) != 0 {
            let code = errno
            close(fd)
            throw .io(code, "fstat", path)
        }
        do throws(DataFileError) {
            try requireRegular(fst.st_mode, path)
        } catch {
            close(fd)
            throw error
        }
        return OpenedDataFile(path: path, fd: fd, size: Int(fst.st_size))
    }

    private static func requireRegular(_ mode: mode_t, _ path: String) throws(DataFileError) {
        let kind: String
        switch mode & S_IFMT {
        case S_IFREG: return
        case S_IFLNK: kind = "a symbolic link, not the data file itself"
        case S_IFDIR: kind = "a directory, not a file"
        case S_IFIFO: kind = "a FIFO, not a regular file"
        case S_IFSOCK: kind = "a socket, not a regular file"
        case S_IFCHR: kind = "a character device, not a regular file"
        case S_IFBLK: kind = "a block device, not a regular file"
        default: kind = "not a regular file"
        }
        throw DataFileError(reason: .notRegularFile, path: path, message: "\(path) is \(kind)")
    }

    /// Reads up to `count` bytes at `offset` into `buffer`, retrying short reads
    /// and `EINTR`; returns how many bytes were read (fewer only at end of file).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DataFileError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        guard offset <= UInt64(Int64.max) else { return 0 }
        var done = 0
        while done < buffer.count {
            let (position, overflow) = Int64(offset).addingReportingOverflow(Int64(done))
            if overflow { break }
            let n = faultable(.dataFile) { pread(fd, base + done, buffer.count - done, off_t(position)) }
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                throw .io(code, "read at offset \(position)", path)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Takes the file's length again (`fstat`).
    func refreshSize() throws(DataFileError) {
        var st = stat()
        if fstat(fd, &st) != 0 { throw .io(errno, "fstat", path) }
        size = Int(st.st_size)
    }

    /// Reads and checks both meta pages (see ``DataFile/inspect(directory:)``).
    ///
    /// The store may be live: another process can commit while the meta pages
    /// are read, and a read that races the write of a meta page can see it half
    /// written (buffered reads and writes of one page are not atomic with each
    /// other on Linux). Damage is therefore reported only when a second and a
    /// third look, 1 ms apart and with the file's length taken again, see it too;
    /// real damage stays, a commit in flight does not.
    func readMeta() throws(DataFileError) -> CheckedMeta {
        var looks = 1
        while true {
            do throws(DataFileError) {
                return try readMetaOnce()
            } catch where error.isDamage && looks < 3 {
                looks += 1
                usleep(1000)
                try refreshSize()
            }
        }
    }

    private func readMetaOnce() throws(DataFileError) -> CheckedMeta {
        let headerAndMeta = MDBFormat.pageHeaderSize + MDBFormat.metaSize
        if size == 0 {
            throw DataFileError(reason: .empty, path: path,
                                message: "\(path) is empty (0 bytes): not an LMDB data file (LMDB would write a new store into it)")
        }
        if size < headerAndMeta {
            throw DataFileError(reason: .truncated, path: path,
                                message: "\(path) is \(size) bytes, too short to hold meta page 0 (\(headerAndMeta) bytes)")
        }
        let meta0 = try readMetaPage(0, at: 0)
        try checkMeta(meta0, slot: 0)
        let pageSize = meta0.pageSize
        if size < 2 * pageSize {
            throw DataFileError(reason: .truncated, path: path,
                                message: "\(path) is \(size) bytes, shorter than its two meta pages (2 × \(pageSize) bytes)")
        }
        let meta1 = try readMetaPage(1, at: UInt64(pageSize))
        try checkMeta(meta1, slot: 1)
        if meta1.pageSize != pageSize {
            throw DataFileError(reason: .pageSizeMismatch, path: path,
                                message: "\(path): meta page 0 says the page size is \(pageSize) bytes but meta page 1 says \(meta1.pageSize)")
        }
        let metas = [meta0, meta1]
        // The required length, from the meta page with the larger last page.
        let longest = meta1.lastPage > meta0.lastPage ? 1 : 0
        let last = metas[longest].lastPage
        let (pages, o1) = last.addingReportingOverflow(1)
        let (required, o2) = pages.multipliedReportingOverflow(by: UInt64(pageSize))
        // LMDB writes a commit's pages before its meta page: a meta page read after the
        // length was taken may name pages added since. Take the length again, after it.
        if !o1 && !o2 && required > UInt64(size) { try refreshSize() }
        if o1 || o2 || required > UInt64(size) {
            let bytes = o1 || o2 ? "more than 2^64" : "\(required)"
            throw DataFileError(reason: .truncated, path: path,
                                message: "\(path) is \(size) bytes but its meta page \(longest) says the data runs to page \(last) (\(bytes) bytes)")
        }
        // LMDB uses the meta page with the higher transaction ID (meta 0 on a tie), and a
        // read transaction then takes `metas[txnid & 1]`: the two must be the same page.
        let newestIndex = meta1.txnid > meta0.txnid ? 1 : 0
        let newest = metas[newestIndex]
        if Int(newest.txnid & 1) != newestIndex {
            throw DataFileError(reason: .metaSlotMismatch, path: path,
                                message: "\(path): meta page \(newestIndex) is the newest but its transaction ID \(newest.txnid) belongs in meta page \(1 - newestIndex)")
        }
        if newest.txnid - metas[1 - newestIndex].txnid > 1 {
            throw DataFileError(reason: .transactionGap, path: path,
                                message: "\(path): meta page 0 holds transaction \(meta0.txnid) and meta page 1 transaction \(meta1.txnid); one commit apart at most, so one of them is damaged")
        }
        for (name, record) in [("main database", newest.main), ("free-page database", newest.free)] {
            if record.root != MDBFormat.invalidPage && (record.root < 2 || record.root > newest.lastPage) {
                throw DataFileError(reason: .badRoot, path: path,
                                    message: "\(path): meta page \(newestIndex) says the \(name) starts at page \(record.root), outside its data (pages 2…\(newest.lastPage))")
            }
        }
        if newest.free.flags & ~MDBFormat.allowedFreeFlags != 0 {
            throw DataFileError(reason: .badFlags, path: path,
                                message: "\(path): meta page \(newestIndex) gives the free-page database flags 0x\(String(newest.free.flags, radix: 16)) (only MDB_INTEGERKEY and environment flags belong there)")
        }
        if newest.main.flags != 0 {
            throw DataFileError(reason: .badFlags, path: path,
                                message: "\(path): meta page \(newestIndex) gives the main database flags 0x\(String(newest.main.flags, radix: 16)) (this package opens it with none)")
        }
        let summary = DataFileSummary(
            path: path, fileSize: size, pageSize: pageSize, newestMeta: newestIndex, transactionID: newest.txnid,
            lastPage: newest.lastPage, mapSize: newest.mapSize,
            mainRoot: newest.main.root == MDBFormat.invalidPage ? nil : newest.main.root, mainEntries: newest.main.entries,
            freeRoot: newest.free.root == MDBFormat.invalidPage ? nil : newest.free.root)
        return CheckedMeta(metas: metas, newestIndex: newestIndex, summary: summary)
    }

    private func readMetaPage(_ slot: Int, at offset: UInt64) throws(DataFileError) -> MetaPage {
        let length = MDBFormat.pageHeaderSize + MDBFormat.metaSize
        var bytes = [UInt8](repeating: 0, count: length)
        let got = try bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(DataFileError) -> Int in try read(into: buffer, at: offset) }
        }.get()
        if got < length {
            throw DataFileError(reason: .truncated, path: path,
                                message: "\(path) is \(size) bytes, too short to hold meta page \(slot)")
        }
        return bytes.withUnsafeBytes { MetaPage(ByteView($0)) }
    }

    private func checkMeta(_ meta: MetaPage, slot: Int) throws(DataFileError) {
        if meta.flags & MDBFormat.pMeta == 0 {
            throw DataFileError(reason: .notMetaPage, path: path,
                                message: "\(path): page \(slot) is not a meta page (flags 0x\(String(meta.flags, radix: 16)) lack P_META)")
        }
        if meta.magic != MDBFormat.magic {
            throw DataFileError(reason: .badMagic, path: path,
                                message: "\(path): meta page \(slot) has magic 0x\(String(meta.magic, radix: 16, uppercase: true)), not LMDB's 0xBEEFC0DE")
        }
        if meta.version != MDBFormat.dataVersion {
            throw DataFileError(reason: .badVersion, path: path,
                                message: "\(path): meta page \(slot) has data format version \(meta.version); this LMDB reads version \(MDBFormat.dataVersion)")
        }
        if meta.pgno != UInt64(slot) {
            throw DataFileError(reason: .notMetaPage, path: path,
                                message: "\(path): meta page \(slot) carries page number \(meta.pgno)")
        }
        let size = meta.pageSize
        if size < MDBFormat.minPageSize || size > MDBFormat.maxPageSize || size & (size - 1) != 0 {
            throw DataFileError(reason: .badPageSize, path: path,
                                message: "\(path): meta page \(slot) says the page size is \(size) bytes (must be a power of two in \(MDBFormat.minPageSize)…\(MDBFormat.maxPageSize))")
        }
        if meta.lastPage < 1 {
            throw DataFileError(reason: .badLastPage, path: path,
                                message: "\(path): meta page \(slot) says the last page is \(meta.lastPage) (must be at least 1)")
        }
    }
}
