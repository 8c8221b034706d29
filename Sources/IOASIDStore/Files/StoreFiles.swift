import LMDB

/// The files of a store on disk: who may use them, whether they are sound
/// before anything maps them, and how a new store comes to exist.
///
/// - The directory and its `data.mdb` and `lock.mdb` must belong to this
///   user; the directory must not be a symbolic link nor open to group or
///   others (mode `0700`, as ssh insists for private keys); the files must be
///   regular files (not links) that group and others cannot write, and — for
///   an open that writes — cannot read either (the tool does not add private
///   data to a file others could read should the directory ever be opened).
///   A read-only open accepts read-only copies such as `0444` files behind the
///   private directory.
/// - `data.mdb` is checked with plain reads (``DataFile``) before LMDB maps it:
///   a truncated, empty, zeroed or foreign file is a corrupt store, named, and
///   never rewritten by a read. A directory with no store files at all is not
///   initialised.
/// - A new store is built in a private temporary directory beside the target,
///   synced, and renamed into place (onto nothing, or an empty directory), and
///   the parent directory is synced: a crash leaves no store or a whole one.
enum StoreFiles {
    /// What is at a store path.
    enum Inspection {
        /// No store files: nothing, or an empty (or unrelated) directory.
        case absent
        /// A store whose files passed the checks.
        case valid
    }

    /// Checks the directory and files at `path` without mapping anything.
    static func inspect(_ path: String, forWriting: Bool = true) throws(IOASIDError) -> Inspection {
        // lstat("link/") follows the link: look at the name itself.
        var name = Substring(path)
        while name.count > 1, name.hasSuffix("/") { name = name.dropLast() }
        guard let directory = try status(String(name)) else { return .absent }
        switch directory.kind {
        case .directory: break
        case .symbolicLink:
            throw IOASIDError(.accessDenied, "\(path) is a symbolic link; give the store directory itself")
        default:
            throw IOASIDError(.invalidArgument, "\(path) is not a directory")
        }
        try checkPrivate(path, directory, isDirectory: true, forWriting: forWriting)
        for name in ["data.mdb", "lock.mdb"] {
            let file = path + "/" + name
            guard let status = try status(file) else { continue }
            guard status.kind == .regular else {
                throw IOASIDError(.corruptStore, "\(file) is \(status.kind == .symbolicLink ? "a symbolic link" : "not a regular file")")
            }
            try checkPrivate(file, status, isDirectory: false, forWriting: forWriting)
        }
        do {
            switch try DataFile.inspect(directory: path) {
            case .notInitialized: return .absent
            case .valid: return .valid
            }
        } catch where error.isDamage {
            throw IOASIDError(.corruptStore, error.message, cause: error)
        } catch where error.reason == .notADirectory {
            throw IOASIDError(.invalidArgument, error.message, cause: error)
        } catch {
            throw IOASIDError(error.errno == 13 ? .accessDenied : .storageFailure, error.message, cause: error)
        }
    }

    private static func status(_ path: String) throws(IOASIDError) -> FileStatus? {
        do { return try FileSystem.status(path) } catch {
            throw IOASIDError(error == .accessDenied ? .accessDenied : .storageFailure, "cannot examine \(path): \(error.message)", cause: error)
        }
    }

    /// Refuses files of another user, and files or a directory others could read or change.
    private static func checkPrivate(_ path: String, _ status: FileStatus, isDirectory: Bool, forWriting: Bool) throws(IOASIDError) {
        let me = FileStatus.currentUser
        if status.owner != me {
            throw IOASIDError(.accessDenied, "\(path) belongs to user \(status.owner), not to this user (\(me))")
        }
        let mode = String(status.permissions, radix: 8)
        if isDirectory, status.permissions & 0o077 != 0 {
            throw IOASIDError(
                .accessDenied,
                "\(path) is open to group or others (mode \(mode)); the store directory must be private: chmod 700 \(path)"
            )
        }
        // Private data and tokens: a file others could read is refused like one they could write
        // (a 0700 directory hides it today; a later chmod of the directory would not).
        if !isDirectory, forWriting, status.permissions & 0o200 == 0, me != 0 {
            throw IOASIDError(.readOnly, "\(path) is read-only (mode \(mode)); read commands still work")
        }
        if !isDirectory, status.permissions & (forWriting ? 0o077 : 0o022) != 0 {
            throw IOASIDError(
                .accessDenied,
                "\(path) is open to group or others (mode \(mode)); the store's files must be private: chmod 600 \(path)"
            )
        }
    }

    /// Creates a store at `path` by building it with `build` in a new private
    /// temporary directory beside it, then renaming that into place.
    ///
    /// - Returns: `false` when another process created a store at `path` first (nothing was changed).
    static func create(at path: String, build: (String) throws(IOASIDError) -> Void) throws(IOASIDError) -> Bool {
        let parent = FileSystem.parent(of: path)
        let name = path.split(separator: "/").last.map(String.init) ?? "store"
        let temporary = parent + "/." + name + ".ioasid-init-" + String(UInt64.random(in: 0 ... .max), radix: 36)
        do { try FileSystem.makePrivateDirectory(temporary) } catch {
            throw IOASIDError.fileFailure("cannot create a store beside \(path)", error)
        }
        var renamed = false
        defer { if !renamed { FileSystem.removeDirectory(temporary) } }
        try build(temporary)
        do {
            try FileSystem.syncDirectory(temporary)
        } catch {
            throw IOASIDError.fileFailure("cannot sync the new store", error)
        }
        do {
            // Onto nothing, or onto an empty directory (rename(2) replaces only an empty one).
            try FileSystem.rename(temporary, to: path, replacing: true)
            renamed = true
        } catch where error.code == 39 || error == .exists {  // ENOTEMPTY, EEXIST
            if case .valid = try inspect(path) { return false }
            throw IOASIDError(.invalidArgument, "\(path) holds files that are not a store; give a new or empty directory")
        } catch {
            throw IOASIDError.fileFailure("cannot move the new store into \(path)", error)
        }
        do { try FileSystem.syncDirectory(parent) } catch {
            throw IOASIDError.fileFailure("cannot sync \(parent)", error)
        }
        return true
    }
}
