import LMDB

extension IOASIDStore {
    /// Copies a consistent snapshot of the live store into a new directory
    /// `destination`, while writers go on.
    ///
    /// The copy is private and atomic: a temporary directory (`0700`) beside
    /// `destination` receives `data.mdb` (created `0600` by `open`, never
    /// chmod-ed later), written with LMDB's copy, synced; the directory is
    /// synced and renamed into place, and its parent synced. A backup that fails
    /// or is killed leaves nothing others can read and nothing that blocks a
    /// retry; one that returned survives a power cut. The copy starts a new
    /// life as a store of its own: open it like any store.
    ///
    /// - Parameters:
    ///   - destination: the directory to create (or replace) with the copy.
    ///   - compact: omit free pages (`MDB_CP_COMPACT`).
    ///   - replacing: replace an existing `destination` that is a store made by
    ///     a backup (holding only `data.mdb`, an LMDB data file, and `lock.mdb`; not open
    ///     in another process; not this store) or an empty directory; otherwise an
    ///     existing one is refused.
    /// - Returns: the size of the copied data file in bytes.
    /// - Throws: ``IOASIDError/Code-swift.struct/invalidArgument`` when `destination` exists
    ///   (and may not be replaced), ``IOASIDError/Code-swift.struct/storageFailure`` when the
    ///   copy fails (a full disk says so).
    @discardableResult
    public func backup(to destination: String, compact: Bool = false, replacing: Bool = false) throws(IOASIDError) -> Int {
        guard !destination.isEmpty else { throw IOASIDError(.invalidArgument, "the backup destination is empty") }
        _ = try replaceable(destination, replacing: replacing)
        let parent = FileSystem.parent(of: destination)
        let name = destination.split(separator: "/").last.map(String.init) ?? "backup"
        let temporary = parent + "/." + name + ".ioasid-backup-" + String(UInt64.random(in: 0 ... .max), radix: 36)
        do { try FileSystem.makePrivateDirectory(temporary) } catch {
            throw IOASIDError.fileFailure("cannot create the backup beside \(destination)", error)
        }
        var placed = false
        defer { if !placed { FileSystem.removeDirectory(temporary) } }
        let file = try AtomicFileWriter(destination: temporary + "/data.mdb", replacing: false)
        try file.copy(from: env, compact: compact)
        let size = try file.size()
        try file.commit()
        // Checked again: it may have appeared, or changed, while the copy was written.
        if replacing, let existing = try replaceable(destination, replacing: true) {
            // Move the old backup aside first, so the new one takes its place in one rename.
            let old = temporary + ".old"
            do { try FileSystem.rename(destination, to: old, replacing: false) } catch {
                throw IOASIDError.fileFailure("cannot replace \(destination)", error)
            }
            // What was moved aside must be what was checked; otherwise it goes back untouched.
            guard (try? FileSystem.status(old))??.identity == existing.identity else {
                try? FileSystem.rename(old, to: destination, replacing: false)
                throw IOASIDError(.invalidArgument, "\(destination) changed while the backup was written; nothing was replaced")
            }
            do { try place(temporary, at: destination) } catch {
                // The old backup goes back rather than leaving none.
                try? FileSystem.rename(old, to: destination, replacing: false)
                throw error
            }
            FileSystem.removeDirectory(old)
        } else {
            try place(temporary, at: destination)
        }
        placed = true
        do { try FileSystem.syncDirectory(parent) } catch { throw IOASIDError.fileFailure("cannot sync \(parent)", error) }
        return Int(size)
    }

    /// What is at `destination`, when something is and it may be replaced (`nil`: nothing is).
    ///
    /// Refused: anything when not `replacing`; then anything but an empty directory or a
    /// previous backup — one that holds anything but `data.mdb` and `lock.mdb` (regular
    /// files), whose `data.mdb` is not an LMDB data file, that this or another process has
    /// open as a store, or that is this store's own. Replacing deletes the files of the old
    /// directory, so it must hold nothing else.
    private func replaceable(_ destination: String, replacing: Bool) throws(IOASIDError) -> FileStatus? {
        guard let existing = try? FileSystem.status(destination) else { return nil }
        guard replacing else { throw IOASIDError(.invalidArgument, "\(destination) exists; choose a new directory for the backup") }
        guard existing.kind == .directory else { throw IOASIDError(.invalidArgument, "\(destination) exists and is not a directory") }
        func refuse(_ why: String) -> IOASIDError {
            IOASIDError(.invalidArgument, "\(destination) is not a previous backup (\(why)); nothing was replaced")
        }
        if let own = try? FileSystem.status(path), own.identity == existing.identity {
            throw IOASIDError(.invalidArgument, "\(destination) is this store's own directory; back it up into another one")
        }
        // Open here, its lock is this process's: the probe below cannot see it, and closing the
        // probe's descriptor would release it.
        if Environment.isOpen(at: destination) {
            throw IOASIDError(.invalidArgument, "\(destination) is open as a store in this process; nothing was replaced")
        }
        let names: [String]
        do { names = try FileSystem.entries(of: destination) } catch {
            throw IOASIDError.fileFailure("cannot list \(destination)", error)
        }
        if names.isEmpty { return existing }
        for name in names.sorted() {
            guard name == "data.mdb" || name == "lock.mdb" else {
                throw refuse("it holds \"\(Names.escaped(name))\"; a backup holds only data.mdb and lock.mdb")
            }
            guard (try? FileSystem.status(destination + "/" + name))?.kind == .regular else {
                throw refuse("its \(name) is not a regular file")
            }
        }
        guard names.contains("data.mdb"), case .valid = try? DataFile.inspect(directory: destination) else {
            throw refuse("it holds no valid LMDB data file")
        }
        let inUse: Bool
        do { inUse = try FileSystem.isLockedByAnotherProcess(destination + "/lock.mdb") } catch {
            throw IOASIDError.fileFailure("cannot check whether \(destination) is in use", error)
        }
        if inUse {
            throw IOASIDError(.invalidArgument, "\(destination) is open as a store in another process (its lock.mdb is locked); nothing was replaced")
        }
        return existing
    }

    private func place(_ temporary: String, at destination: String) throws(IOASIDError) {
        do { try FileSystem.rename(temporary, to: destination, replacing: false) } catch {
            throw error == .exists || error.code == 39
                ? IOASIDError(.invalidArgument, "\(destination) appeared while the backup was written; nothing was replaced")
                : IOASIDError.fileFailure("cannot move the backup into \(destination)", error)
        }
    }
}
