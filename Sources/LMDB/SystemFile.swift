internal import CLMDB
internal import CLMDBSupport
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// An open file descriptor, closed when the value goes away (in the style of
/// swift-system's `FileDescriptor`, but owning): the package's one home for
/// reading and writing files with system calls, with every error thrown as an
/// ``LMDBError`` carrying the `errno` (so `ENOSPC`, `EPIPE`, `EACCES` keep their names).
///
/// Files the package creates are private from the moment they exist: the mode
/// `0600` is given to `open` with `O_EXCL` (never a later `chmod`), and
/// `O_NOFOLLOW` refuses a planted symbolic link.
public struct SystemFile: ~Copyable {
    /// The raw descriptor.
    public let descriptor: Int32
    private let owned: Bool

    private init(descriptor: Int32, owned: Bool) {
        self.descriptor = descriptor
        self.owned = owned
    }

    deinit { if owned { _ = Glibc.close(descriptor) } }

    /// Standard input (not closed when the value goes away).
    public static var standardInput: SystemFile { SystemFile(descriptor: STDIN_FILENO, owned: false) }
    /// Standard output (not closed when the value goes away).
    public static var standardOutput: SystemFile { SystemFile(descriptor: STDOUT_FILENO, owned: false) }
    /// Standard error (not closed when the value goes away).
    public static var standardError: SystemFile { SystemFile(descriptor: STDERR_FILENO, owned: false) }

    /// A value for a descriptor someone else owns (not closed when the value goes away).
    public static func borrowing(_ descriptor: Int32) -> SystemFile { SystemFile(descriptor: descriptor, owned: false) }

    /// Opens an existing file (or FIFO, or device such as `/dev/stdin`) for reading.
    public static func openForReading(_ path: String) throws(LMDBError) -> SystemFile {
        try open(path, O_RDONLY | O_CLOEXEC, 0)
    }

    /// Creates a new file readable and writable by its owner only (`0600`),
    /// failing if anything (a file, a link) already exists at `path`.
    public static func createPrivate(_ path: String) throws(LMDBError) -> SystemFile {
        try open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
    }

    /// A private (`0600`) scratch file in `directory` with no name: it is
    /// unlinked as soon as it is open (`O_TMPFILE` where the file system
    /// supports it), so nothing is left behind whatever happens to the process.
    public static func createAnonymous(in directory: String) throws(LMDBError) -> SystemFile {
        let fd = faultable(.openTemporary) { clmdb_open_tmpfile(directory) }
        if fd >= 0 { return SystemFile(descriptor: fd, owned: true) }
        // No O_TMPFILE here: a random name, created exclusively, unlinked at once.
        for _ in 0..<16 {
            let path = directory + "/.ioasid-spool-" + String(UInt64.random(in: 0 ... .max), radix: 36)
            let fd = faultable(.open) { Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
            if fd >= 0 {
                _ = unlink(path)
                return SystemFile(descriptor: fd, owned: true)
            }
            if errno != EEXIST { throw LMDBError(code: errno) }
        }
        throw LMDBError(code: EEXIST)
    }

    private static func open(_ path: String, _ flags: Int32, _ mode: mode_t) throws(LMDBError) -> SystemFile {
        while true {
            let fd = faultable(.open) { Glibc.open(path, flags, mode) }
            if fd >= 0 { return SystemFile(descriptor: fd, owned: true) }
            if errno != EINTR { throw LMDBError(code: errno) }
        }
    }

    /// Reads up to `count` bytes and appends them to `buffer`; returns how many (0 at the end).
    @discardableResult
    public func read(into buffer: inout [UInt8], upTo count: Int) throws(LMDBError) -> Int {
        guard count > 0 else { return 0 }
        let result = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { scratch -> Result<Int, LMDBError> in
            while true {
                let n = faultable(.read) { Glibc.read(descriptor, scratch.baseAddress, count) }
                if n >= 0 {
                    buffer.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[..<n]))
                    return .success(n)
                }
                if errno != EINTR { return .failure(LMDBError(code: errno)) }
            }
        }
        return try result.get()
    }

    /// Writes every byte, retrying short writes; throws the `errno` of a failed write.
    public func writeAll(_ bytes: [UInt8]) throws(LMDBError) {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(LMDBError) in try writeAll(raw) } }
        try result.get()
    }

    /// Writes every byte of `raw`.
    func writeAll(_ raw: UnsafeRawBufferPointer) throws(LMDBError) {
        var offset = 0
        while offset < raw.count {
            let n = faultable(.write) { Glibc.write(descriptor, raw.baseAddress.map { $0 + offset }, raw.count - offset) }
            if n > 0 {
                offset += n
            } else if n < 0, errno != EINTR {
                throw LMDBError(code: errno)
            } else if n == 0 {
                throw LMDBError(code: EIO)
            }
        }
    }

    /// Flushes the file's data and metadata to the device (`fsync`).
    public func sync() throws(LMDBError) {
        if faultable(.fsync, { fsync(descriptor) }) != 0 { throw LMDBError(code: errno) }
    }

    /// Moves the file offset to `offset` from the start.
    public func seek(to offset: Int64) throws(LMDBError) {
        if faultable(.seek, { lseek(descriptor, off_t(offset), SEEK_SET) }) < 0 { throw LMDBError(code: errno) }
    }

    /// The file's size in bytes.
    public func size() throws(LMDBError) -> Int64 {
        var st = stat()
        if faultable(.fstat, { fstat(descriptor, &st) }) != 0 { throw LMDBError(code: errno) }
        return Int64(st.st_size)
    }

    /// Copies the environment's data file into this file (`mdb_env_copyfd2`),
    /// optionally compacted. Call ``sync()`` afterwards.
    public func copy(from environment: Environment, compact: Bool) throws(LMDBError) {
        // LMDB returns the errno itself. The copy reads through a transaction of LMDB's own:
        // map changes are kept out meanwhile.
        try environment.withMapSteady { () throws(LMDBError) in
            try LMDBError.check(SyscallFaults.injected(.copy) ?? clmdb_env_copyfd2(environment.handle, descriptor, compact ? UInt32(MDB_CP_COMPACT) : 0))
        }
    }
}

/// Directory operations for atomic, durable, private files: create under a
/// temporary name, sync, rename into place, sync the directory.
public enum FileSystem {
    /// Creates a directory readable and writable by its owner only (`0700`),
    /// failing if anything exists at `path`.
    public static func makePrivateDirectory(_ path: String) throws(LMDBError) {
        if faultable(.mkdir, { mkdir(path, 0o700) }) != 0 { throw LMDBError(code: errno) }
    }

    /// Flushes a directory's entries to the device, so that files created or
    /// renamed in it survive a power cut.
    public static func syncDirectory(_ path: String) throws(LMDBError) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw LMDBError(code: errno) }
        defer { _ = Glibc.close(fd) }
        if faultable(.syncDirectory, { fsync(fd) }) != 0 { throw LMDBError(code: errno) }
    }

    /// Renames `source` to `destination`. With `replacing: false`, fails with
    /// `EEXIST` when `destination` exists (atomically: `RENAME_NOREPLACE`).
    public static func rename(_ source: String, to destination: String, replacing: Bool) throws(LMDBError) {
        if replacing {
            if faultable(.rename, { Glibc.rename(source, destination) }) != 0 { throw LMDBError(code: errno) }
            return
        }
        if faultable(.rename, { clmdb_rename_noreplace(source, destination) }) != 0 {
            throw LMDBError(code: errno)
        }
    }

    /// Removes a file (not a directory); a missing file is not an error.
    public static func removeFile(_ path: String) {
        _ = unlink(path)
    }

    /// Removes a directory and the files directly inside it (what the package's own
    /// temporary directories and backups hold; a link inside is removed, not followed).
    /// `path` itself must be a directory this package made or checked.
    public static func removeDirectory(_ path: String) {
        for name in (try? entries(of: path)) ?? [] { _ = unlink(path + "/" + name) }
        _ = rmdir(path)
    }

    /// The names in the directory at `path`, without `.` and `..`; a symbolic link at `path`
    /// is not followed (`ELOOP`).
    public static func entries(of path: String) throws(LMDBError) -> [String] {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw LMDBError(code: errno) }
        return try entries(ofDirectory: fd)
    }

    /// The names in the directory open at `descriptor`, without `.` and `..`; closes it.
    public static func entries(ofDirectory descriptor: Int32) throws(LMDBError) -> [String] {
        guard let dir = fdopendir(descriptor) else {
            let code = errno
            _ = Glibc.close(descriptor)
            throw LMDBError(code: code)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    /// Whether another process holds a POSIX record lock on the first byte of the file at
    /// `path` (as every process with an LMDB environment open through its `lock.mdb` does;
    /// this process's own locks are not seen); `false` when there is no such file. Never
    /// follows a final symbolic link.
    public static func isLockedByAnotherProcess(_ path: String) throws(LMDBError) -> Bool {
        let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            if errno == ENOENT { return false }
            throw LMDBError(code: errno)
        }
        defer { _ = Glibc.close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = 0
        lock.l_len = 1
        if fcntl(fd, F_GETLK, &lock) != 0 { throw LMDBError(code: errno) }
        return lock.l_type != Int16(F_UNLCK)
    }

    /// The bytes this process may still write on the file system holding `path` (`statvfs`:
    /// the blocks free to unprivileged users, or all free blocks for root); `nil` when
    /// that cannot be read.
    public static func availableBytes(_ path: String) -> UInt64? {
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return nil }
        let blocks = geteuid() == 0 ? fs.f_bfree : fs.f_bavail
        return UInt64(blocks) &* UInt64(fs.f_frsize)
    }

    /// The directory part of `path` (`.` for a bare name).
    public static func parent(of path: String) -> String {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    /// What is at `path`, without following a final symbolic link (`lstat`); `nil` when nothing is.
    public static func status(_ path: String) throws(LMDBError) -> FileStatus? {
        var st = stat()
        if faultable(.lstat, { lstat(path, &st) }) != 0 {
            if errno == ENOENT { return nil }
            throw LMDBError(code: errno)
        }
        return FileStatus(st)
    }
}

/// What `lstat` says about a path.
public struct FileStatus: Sendable, Equatable {
    /// The kind of file.
    public enum Kind: Sendable, Equatable {
        /// A regular file.
        case regular
        /// A directory.
        case directory
        /// A symbolic link (not followed).
        case symbolicLink
        /// A Unix domain socket.
        case socket
        /// A FIFO, device or anything else.
        case other
    }

    /// The kind of file.
    public let kind: Kind
    /// The permission bits (`0o777` mask).
    public let permissions: UInt32
    /// The owner's user ID.
    public let owner: UInt32
    /// The size in bytes.
    public let size: Int64
    /// The device and inode: which file this is.
    public let identity: [UInt8]
    /// When its content last changed, in seconds since 1970.
    public let modified: Int64

    init(_ st: stat) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symbolicLink
        case S_IFSOCK: kind = .socket
        default: kind = .other
        }
        permissions = UInt32(st.st_mode & 0o777)
        owner = UInt32(st.st_uid)
        size = Int64(st.st_size)
        identity = BigEndian.bytes(UInt64(st.st_dev)) + BigEndian.bytes(UInt64(st.st_ino))
        modified = Int64(st.st_mtim.tv_sec)
    }

    /// The effective user ID of this process.
    public static var currentUser: UInt32 { UInt32(geteuid()) }
}
