package import LMDB

/// A file written privately, atomically and durably: it exists only under a
/// temporary name (created `0600` with `O_EXCL`, so nobody else can read it
/// even while it is written) until ``commit()`` syncs it, renames it into
/// place and syncs the directory. Dropped without a commit, it leaves nothing
/// behind. The one home of the rule for every file the package writes.
package final class AtomicFileWriter {
    /// Where the file ends up.
    package let destination: String
    private let temporary: String
    private let replacing: Bool
    private let file: SystemFile
    private var finished = false

    /// Creates the temporary file beside `destination`.
    ///
    /// - Parameter replacing: whether an existing `destination` may be replaced
    ///   (otherwise it is refused now, and again atomically at the rename).
    package init(destination: String, replacing: Bool) throws(IOASIDError) {
        guard !destination.isEmpty else { throw IOASIDError(.invalidArgument, "the destination path is empty") }
        if try Self.regularFileExists(at: destination), !replacing {
            throw IOASIDError(.invalidArgument, "\(destination) exists; choose another name or replace it explicitly")
        }
        self.destination = destination
        self.replacing = replacing
        let directory = FileSystem.parent(of: destination)
        let base = destination.split(separator: "/").last.map(String.init) ?? "file"
        var attempt = 0
        while true {
            let candidate = directory + "/." + base + ".ioasid-tmp-" + String(UInt64.random(in: 0 ... .max), radix: 36)
            do {
                file = try SystemFile.createPrivate(candidate)
                temporary = candidate
                return
            } catch where error == .exists && attempt < 8 {  // another name
                attempt += 1
            } catch {
                throw IOASIDError.fileFailure("cannot create a file in \(directory)", error)
            }
        }
    }

    deinit { if !finished { FileSystem.removeFile(temporary) } }

    /// Appends bytes.
    package func append(_ bytes: [UInt8]) throws(IOASIDError) {
        do { try file.writeAll(bytes) } catch { throw IOASIDError.fileFailure("cannot write \(destination)", error) }
    }

    /// Syncs the file, renames it into place and syncs its directory; after
    /// this returns, the file survives a power cut.
    package func commit() throws(IOASIDError) {
        // What is there now may not be what was there when this began.
        if replacing { _ = try Self.regularFileExists(at: destination) }
        do {
            try file.sync()
            try FileSystem.rename(temporary, to: destination, replacing: replacing)
            finished = true
            try FileSystem.syncDirectory(FileSystem.parent(of: destination))
        } catch {
            throw IOASIDError.fileFailure(finished ? "cannot sync the directory of \(destination)" : "cannot write \(destination)", error)
        }
    }

    /// Whether a regular file is at `path` (`false`: nothing is). Anything else there — a
    /// symbolic link, a FIFO, a device, a socket, a directory — is refused: a file is only
    /// ever written in place of a regular file, so `/dev/full` or a planted link is never
    /// replaced, even when replacing is asked for.
    package static func regularFileExists(at path: String) throws(IOASIDError) -> Bool {
        let status: FileStatus?
        do { status = try FileSystem.status(path) } catch { throw IOASIDError.fileFailure("cannot examine \(path)", error) }
        guard let status else { return false }
        let kind: String
        switch status.kind {
        case .regular: return true
        case .directory: kind = "a directory"
        case .symbolicLink: kind = "a symbolic link"
        case .socket: kind = "a socket"
        case .other: kind = "a FIFO or device"
        }
        throw IOASIDError(.invalidArgument, "\(path) exists and is \(kind), not a regular file; choose another name (only a regular file is ever replaced)")
    }

    /// Copies an environment's data file into the file (LMDB's copy; compacted if asked).
    package func copy(from environment: Environment, compact: Bool) throws(IOASIDError) {
        do { try file.copy(from: environment, compact: compact) } catch {
            throw IOASIDError.fileFailure("cannot copy the store into \(destination)", error)
        }
    }

    /// The bytes written so far.
    package func size() throws(IOASIDError) -> Int64 {
        do { return try file.size() } catch { throw IOASIDError.fileFailure("cannot read the size of \(destination)", error) }
    }
}

extension IOASIDError {
    /// A failed file operation, with the OS error in words (`ENOSPC`: disk full, `EPIPE`: the reader went away).
    package static func fileFailure(_ what: String, _ error: LMDBError) -> IOASIDError {
        let words: String
        switch error.code {
        case LMDBError.noSpace.code: words = "the disk is full"
        case LMDBError.brokenPipe.code: words = "the reader went away (broken pipe)"
        case LMDBError.accessDenied.code: words = "permission denied"
        case LMDBError.readOnlyFileSystem.code: words = "the file system is read-only"
        default: words = error.message
        }
        let code: IOASIDError.Code = error == .readOnlyFileSystem ? .readOnly : .storageFailure
        return IOASIDError(code, "\(what): \(words) (\(error.name))", cause: error)
    }
}
