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

    /// The store's epoch: 1 for a new store; a copy (a restored backup) starts
    /// a new one when it is first opened for writing, numbered after the time
    /// it started (seconds since 1970, or one more than the last if that is
    /// larger), so that two restores of the same backup get different epochs.
    public func epoch() throws -> UInt32 {
        if let cached = context.state.epoch { return cached }
        let epoch = try metaU32(StoreLayout.MetaKey.epoch) ?? 1
        context.state.epoch = epoch
        return epoch
    }

    /// The epochs of this store's history, oldest first, each with the last
    /// sequence before it began: events up to that sequence are the previous
    /// epoch's, the later ones its own.
    func epochHistory() throws -> [(epoch: UInt32, start: UInt64)] {
        let stored = try record(StoreLayout.MetaKey.epochs, in: schema.meta) { r -> [(epoch: UInt32, start: UInt64)] in
            var history: [(epoch: UInt32, start: UInt64)] = []
            while r.remaining > 0 { history.append((try r.u32(), try r.u64())) }
            return history
        }
        if let stored { return stored }
        return [(try epoch(), 0)]
    }

    /// Checks that a consumer's position — the last event it handled, `sequence`
    /// of `epoch` — is one this store's outbox shares: the current epoch, or an
    /// earlier epoch of its history at or before the point where the outbox went
    /// back in time.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/storeRestored`` otherwise.
    func checkPosition(_ sequence: UInt64, epoch seen: UInt32) throws {
        let current = try epoch()
        guard seen != current else { return }
        let history = try epochHistory()
        guard let index = history.firstIndex(where: { $0.epoch == seen }) else {
            throw IOASIDError(
                .storeRestored,
                "epoch \(seen) is not in this store's history (it is at epoch \(current)): the store was restored from a backup; resynchronise"
            )
        }
        let shared = history[(index + 1)...].map(\.start).min() ?? .max
        guard sequence <= shared else {
            throw IOASIDError(
                .storeRestored,
                "event \(sequence) of epoch \(seen) is gone: the store was restored (epoch \(current)) to its state after event \(shared); resynchronise"
            )
        }
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
        let previous = try epoch()
        let next = max(previous == .max ? previous : previous + 1, UInt32(clamping: IOASIDStore.nowMillis() / 1000))
        var history = ByteWriter()
        for (epoch, start) in try epochHistory() {
            history.u32(epoch)
            history.u64(start)
        }
        history.u32(next)
        history.u64(try lastSequence())
        try put(history.bytes, StoreLayout.MetaKey.epochs, in: schema.meta)
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
    /// - Throws: ``IOASIDError/Code-swift.struct/invalidArgument`` when `path` exists,
    ///   ``IOASIDError/Code-swift.struct/corruptStore`` when the backup is damaged.
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
