#if canImport(Glibc)
internal import Glibc
#endif

/// A cheap cross-process wake-up: tells when a file is written by any process.
///
/// LMDB writes every commit's pages and meta page into `data.mdb` with
/// `pwrite` (the store does not use `MDB_WRITEMAP`), and each write raises an
/// inotify `IN_MODIFY` event on the file, whoever made it. A watch blocks in
/// `poll` on an inotify descriptor and drains it, so one commit (several writes)
/// costs the waiter a wake-up or two, never a poll interval.
///
/// Linux only; where inotify is missing or refused (`init` throws), callers fall
/// back to polling.
public final class FileChangeWatch: Sendable {
    private let descriptor: Int32

    /// Watches `path` (a regular file) for writes and for being replaced or removed.
    public init(path: String) throws(LMDBError) {
        #if os(Linux)
        let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        if fd < 0 { throw LMDBError(code: errno) }
        let mask = UInt32(IN_MODIFY) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_ATTRIB) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)
        if inotify_add_watch(fd, path, mask) < 0 {
            let code = errno
            _ = Glibc.close(fd)
            throw LMDBError(code: code)
        }
        descriptor = fd
        #else
        throw LMDBError(code: ENOSYS)
        #endif
    }

    deinit { _ = Glibc.close(descriptor) }

    /// Waits up to `milliseconds` for the file to be written; returns whether it
    /// was (every pending notification is drained, so one commit wakes once or twice).
    public func wait(milliseconds: Int32) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = Glibc.poll(&entry, 1, milliseconds)
        guard ready > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var any = false
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if n > 0 {
                any = true
                continue
            }
            if n < 0 && errno == EINTR { continue }
            break
        }
        return any
    }
}
