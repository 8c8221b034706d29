import Foundation

/// An append-only journal of the operations a torture child has seen succeed.
///
/// Line kinds: `I <op…>` before an operation (intent), `D <op…>` after it
/// returned success, `S <seq> <kind> <id>` for each event delivered before
/// it is acknowledged. `D` and `S` lines are fdatasync'ed before the child goes on,
/// except the `D alloc` lines of a concurrent burst, which its `D allocs-end` line
/// syncs (the parent only kills: a line written before SIGKILL is in the file).
/// Concurrent callers may append: each line is one `write(2)` to a file opened with
/// `O_APPEND`, so lines never interleave.
final class Journal: @unchecked Sendable {
    private let fd: Int32

    init(path: String) throws {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    deinit { close(fd) }

    /// Appends a line; with `sync`, waits until it is on disk.
    func append(_ line: String, sync: Bool) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if sync { fdatasync(fd) }
    }
}

/// Reads the journal lines appended since the last call.
struct JournalReader {
    let path: String
    private var offset: UInt64 = 0

    init(path: String) { self.path = path }

    mutating func newLines() -> [String] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        let data = (try? handle.readToEnd()) ?? Data()
        // Only whole lines: a child killed mid-write may leave a partial one.
        guard let lastNewline = data.lastIndex(of: 0x0a) else { return [] }
        offset += UInt64(lastNewline - data.startIndex + 1)
        return String(decoding: data[data.startIndex...lastNewline], as: UTF8.self)
            .split(separator: "\n").map(String.init)
    }
}
