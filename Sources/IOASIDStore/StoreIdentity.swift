import IOASIDMigrations
import LMDB
import Logging

/// Store identity: a random ID chosen at initialisation, and an epoch that
/// starts again whenever the store's data file is not the one it was last
/// written as — a restored backup, a copy — so that `(store, epoch, sequence)`
/// never repeats even when a restore sends the outbox back in time.
extension IOASIDReading where Self: ~Copyable {
    /// The store's ID (16 random bytes chosen at initialisation), in hex.
    public func storeID() throws -> String {
        if let cached = context.state.storeID { return cached }
        let id = Hex.encode(try record(StoreLayout.MetaKey.storeID, in: schema.meta) { r in try r.bytes(r.remaining) } ?? [])
        context.state.storeID = id
        return id
    }

    /// The store's epoch: 1 for a new store, one more after each restore.
    public func epoch() throws -> UInt32 {
        if let cached = context.state.epoch { return cached }
        let epoch = try metaU32(StoreLayout.MetaKey.epoch) ?? 1
        context.state.epoch = epoch
        return epoch
    }
}

extension WriteTransaction {
    /// Starts a new epoch when `identity` (device and inode of `data.mdb`)
    /// is not the file the store was last written as; records it otherwise.
    ///
    /// - Returns: the new epoch, or `nil` when it did not change.
    func adoptHome(_ identity: [UInt8]) throws -> UInt32? {
        let recorded = try record(StoreLayout.MetaKey.home, in: schema.meta) { r in try r.bytes(r.remaining) }
        if recorded == identity { return nil }
        try put(identity, StoreLayout.MetaKey.home, in: schema.meta)
        guard recorded != nil else { return nil }  // first open since the upgrade: nothing was copied
        let next = try epoch() + 1
        try putMeta(StoreLayout.MetaKey.epoch, u32: next)
        context.state.epoch = next
        return next
    }
}

extension IOASIDStore {
    /// Notices a store that is a copy (restored from a backup, moved between
    /// file systems): its first writable open starts a new epoch.
    func adoptHome() throws(IOASIDError) {
        guard !isReadOnly else { return }
        let file = path + "/data.mdb"
        let identity: [UInt8]
        do {
            guard let status = try FileSystem.status(file) else { return }
            identity = status.identity
        } catch {
            throw IOASIDError.fileFailure("cannot examine \(file)", error)
        }
        let same = try readMapped { tx in
            try tx.record(StoreLayout.MetaKey.home, in: tx.schema.meta) { r in try r.bytes(r.remaining) } == identity
        }
        if same { return }
        if let epoch = try writeMapped({ tx in try tx.adoptHome(identity) }) {
            logger.notice("store is a copy: started epoch \(epoch)", metadata: ["path": "\(path)"])
        }
    }

    /// Restores `backup` (a directory made by ``backup(to:compact:replacing:)``)
    /// as a new store at `path`, privately and atomically, and opens it: the
    /// restored store starts a new epoch, so events committed from now on
    /// never repeat a `(store, epoch, sequence)` that consumers saw before.
    ///
    /// - Throws: ``IOASIDError/Code/invalidArgument`` when `path` exists,
    ///   ``IOASIDError/Code/corruptStore`` when the backup is damaged.
    public static func restore(from backup: String, to path: String, options: Options = Options()) throws(IOASIDError) -> IOASIDStore {
        guard case .valid = try StoreFiles.inspect(backup, forWriting: false) else {
            throw IOASIDError(.notInitialized, "there is no backup at \(backup)")
        }
        if (try? FileSystem.status(path)) != nil { throw IOASIDError(.invalidArgument, "\(path) exists; restore into a new directory") }
        _ = try StoreFiles.create(at: path) { temporary throws(IOASIDError) in
            var readOptions = Options()
            readOptions.readOnly = true
            let source = try IOASIDStore(path: backup, options: readOptions)
            let file = try AtomicFileWriter(destination: temporary + "/data.mdb", replacing: false)
            try file.copy(from: source.env, compact: false)
            try file.commit()
        }
        var open = options
        open.creation = .openExisting
        open.readOnly = false
        return try IOASIDStore(path: path, options: open)
    }
}
