import Crypto
import Foundation
import IOASIDMigrations
import LMDB

/// Live migration, source side: freeze a set and stream its namespace.
extension IOASIDStore {
    /// Freezes `set` and streams its namespace to `sink` in the export format
    /// (``ExportFormat``), reading one consistent snapshot; never holds the
    /// whole set in memory.
    ///
    /// The set stays frozen afterwards: finish with ``completeMigration(of:)``
    /// once the destination has imported it, or ``abortMigration(of:)``. If the
    /// export fails (the sink throws, say, because the disk is full or the
    /// reader went away) and this call froze the set, it unfreezes it again
    /// before throwing; a set that was frozen already stays frozen, and the
    /// error names it in ``IOASIDError/setLeftFrozen``.
    ///
    /// - Parameters:
    ///   - set: the set to migrate (not the system set).
    ///   - sink: receives the export in chunks of about 1 MiB.
    ///   - progress: called now and then with (IDs written, IDs in total).
    /// - Throws: ``IOASIDError``; what `sink` throws is wrapped as `storageFailure`
    ///   unless it is an ``IOASIDError`` already.
    public func exportSet(
        _ set: SetID,
        to sink: ([UInt8]) throws -> Void,
        progress: ((Int, Int) -> Void)? = nil
    ) throws(IOASIDError) -> ExportSummary {
        try exportSet(set, to: sink, progress: progress, finally: {})
    }

    /// ``exportSet(_:to:progress:)`` with a last step (committing a file) whose
    /// failure counts as a failed export.
    private func exportSet(
        _ set: SetID,
        to sink: ([UInt8]) throws -> Void,
        progress: ((Int, Int) -> Void)?,
        finally finish: () throws(IOASIDError) -> Void
    ) throws(IOASIDError) -> ExportSummary {
        let froze = try writeMapped { tx in
            let wasFrozen = try tx.liveSetRecord(set).flags.contains(.frozen)
            try tx.freeze(set)
            return !wasFrozen
        }
        do {
            let summary = try IOASIDError.mapping { try read { tx in try tx.streamExport(set, to: sink, progress: progress) } }
            try finish()
            return summary
        } catch {
            guard froze else {
                throw leaving(set, error, frozen: "; set \(set) was frozen before this export and stays frozen")
            }
            do {
                try abortMigration(of: set)
            } catch let unfreezing {
                throw leaving(set, error, frozen: "; set \(set) stays frozen: unfreezing it failed too (\(unfreezing.message))")
            }
            var unfrozen = error
            unfrozen.message += "; set \(set) was unfrozen"
            throw unfrozen
        }
    }

    /// `error` (its code, cause and location kept), saying — in words and in
    /// ``IOASIDError/setLeftFrozen`` — that `set` stays frozen, if it still is: another
    /// process may have ended the migration meanwhile (the export then failed with
    /// `setNotFrozen`), and a set that is not frozen is not named.
    private func leaving(_ set: SetID, _ error: IOASIDError, frozen words: String) -> IOASIDError {
        var left = error
        // When even this read fails, the set is taken to be frozen still: the advice to end the migration is then harmless.
        let frozen = (try? self.set(set).isFrozen) ?? true
        guard frozen else {
            left.message += "; set \(set) is not frozen (its migration was ended meanwhile)"
            return left
        }
        left.message += words
        left.setLeftFrozen = set
        return left
    }

    /// Freezes `set` and writes its export to the file `path`, privately and
    /// atomically (`AtomicFileWriter`: a `0600` temporary file beside `path`,
    /// synced, renamed into place, the directory synced). If writing or
    /// committing the file fails, the file is not there and a set this call
    /// froze is unfrozen again, as with ``exportSet(_:to:progress:)``.
    ///
    /// - Parameters:
    ///   - set: the set to freeze and export.
    ///   - path: the file to create.
    ///   - replacing: whether an existing file at `path` may be replaced.
    ///   - progress: called now and then with (IDs written, IDs in the set).
    public func exportSet(
        _ set: SetID, toFile path: String, replacing: Bool = false, progress: ((Int, Int) -> Void)? = nil
    ) throws(IOASIDError) -> ExportSummary {
        let file = try AtomicFileWriter(destination: path, replacing: replacing)
        return try exportSet(set, to: { bytes throws(IOASIDError) in try file.append(bytes) }, progress: progress, finally: { () throws(IOASIDError) in
            try file.commit()
        })
    }

    /// Completes a migration at the source. See ``WriteTransaction/completeMigration(of:)``.
    @discardableResult
    public func completeMigration(of set: SetID) throws(IOASIDError) -> FreeSetResult {
        try writeMapped { try $0.completeMigration(of: set) }
    }

    /// Aborts a migration at the source. See ``WriteTransaction/abortMigration(of:)``.
    public func abortMigration(of set: SetID) throws(IOASIDError) {
        try writeMapped { try $0.abortMigration(of: set) }
    }
}

extension ReadTransaction {
    /// Writes the export of a frozen set: header, one line per allocated ID, trailer.
    func streamExport(_ set: SetID, to sink: ([UInt8]) throws -> Void, progress: ((Int, Int) -> Void)?) throws -> ExportSummary {
        let record = try setRecord(set)
        // Another writer may have aborted the migration between the freeze and this snapshot.
        guard record.isLive, record.flags.contains(.frozen), record.count >= record.pending else {
            throw IOASIDError(.setNotFrozen, "set \(set) was unfrozen before it could be exported")
        }
        let storeID = try self.record(StoreLayout.MetaKey.storeID, in: schema.meta) { r in try r.bytes(r.remaining) } ?? []
        let allocated = Int(record.count - record.pending)
        let header = ExportHeader(
            format: ExportFormat.name, version: ExportFormat.version,
            exportID: UUID().uuidString.lowercased(), sourceStore: Hex.encode(storeID),
            set: set.rawValue, token: record.token, quota: record.quota, count: allocated,
            createdAt: IOASIDStore.nowMillis()
        )
        var hasher = SHA256()
        var buffer: [UInt8] = []
        buffer.reserveCapacity((1 << 20) + ExportFormat.maximumLineLength)
        func flush() throws {
            hasher.update(data: buffer)
            try sink(buffer)
            buffer.removeAll(keepingCapacity: true)
        }
        buffer += header.line()
        buffer.append(0x0a)
        var written = 0
        progress?(0, allocated)
        try forEachRecord(in: set) { id, entry in
            guard !entry.isFreePending else { return }
            entry.data.withUnsafeBytes { ExportEntry(id: id.rawValue, guest: entry.guest, data: $0).append(to: &buffer) }
            written += 1
            if buffer.count >= 1 << 20 { try flush() }
            if written % 16384 == 0 { progress?(written, allocated) }
        }
        guard written == allocated else {
            throw IOASIDError(.corruptStore, "set \(set) records \(allocated) allocated IDs but holds \(written)")
        }
        hasher.update(data: buffer)
        let digest = Hex.encode(Array(hasher.finalize()))
        buffer += Array("{\"count\":\(written),\"end\":true,\"sha256\":\"\(digest)\"}\n".utf8)
        try sink(buffer)
        progress?(written, allocated)
        return ExportSummary(header: header, sha256: digest)
    }
}
