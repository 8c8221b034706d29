import Crypto
public import Foundation
import LMDB

/// Live migration, source side: freeze a set, export its namespace, then
/// complete (free and destroy it here) or abort (unfreeze it).
extension WriteTransaction {
    /// Freezes a set for migration: allocation, free, attach, detach, quota
    /// changes and free-set in it are refused with ``IOASIDError/Code/setFrozen``;
    /// lookups still work. Freezing a frozen set does nothing.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSet``, ``IOASIDError/Code/systemSetProtected``.
    public func freeze(_ set: SetID) throws {
        try operation {
            var record = try liveSetRecord(set)
            guard !record.flags.contains(.system) else {
                throw IOASIDError(.systemSetProtected, "the system set cannot be migrated")
            }
            guard !record.flags.contains(.frozen) else { return }
            record.flags.insert(.frozen)
            try putSet(record, set)
        }
    }

    /// Ends a migration at the source: unfreezes the set, then frees and
    /// destroys it (FREE events as usual).
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSet``, ``IOASIDError/Code/setNotFrozen``.
    @discardableResult
    public func completeMigration(of set: SetID) throws -> FreeSetResult {
        try operation {
            try unfreeze(set)
            return try freeSet(set, destroy: true)
        }
    }

    /// Abandons a migration at the source: the set is unfrozen and carries on.
    ///
    /// - Throws: ``IOASIDError/Code/noSuchSet``, ``IOASIDError/Code/setNotFrozen``.
    public func abortMigration(of set: SetID) throws {
        try operation {
            try unfreeze(set)
        }
    }

    private func unfreeze(_ set: SetID) throws {
        var record = try liveSetRecord(set)
        guard record.flags.contains(.frozen) else {
            throw IOASIDError(.setNotFrozen, "set \(set) is not being migrated")
        }
        record.flags.remove(.frozen)
        try putSet(record, set)
    }
}

extension IOASIDStore {
    /// Freezes `set` and streams its namespace to `sink` in the export format
    /// (``ExportFormat``), reading one consistent snapshot; never holds the whole
    /// set in memory.
    ///
    /// The set stays frozen afterwards: finish with ``completeMigration(of:)``
    /// once the destination has imported it, or ``abortMigration(of:)``.
    ///
    /// - Parameters:
    ///   - set: the set to migrate (not the system set).
    ///   - sink: receives the export in chunks of about 1 MiB.
    ///   - progress: called now and then with (IDs written, IDs in total).
    public func exportSet(
        _ set: SetID,
        to sink: (Data) throws -> Void,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> ExportSummary {
        try IOASIDError.mapping {
            try write { try $0.freeze(set) }
            return try read { tx in
                let record = try tx.setRecord(set)
                // Another writer may have aborted the migration between the freeze and this snapshot.
                guard record.flags.contains(.frozen), record.count >= record.pending else {
                    throw IOASIDError(.setNotFrozen, "set \(set) was unfrozen before it could be exported")
                }
                let storeID = try tx.txn.get(MetaKey.storeID, in: tx.schema.meta) ?? []
                let allocated = Int(record.count - record.pending)
                let header = ExportHeader(
                    format: ExportFormat.name, version: ExportFormat.version,
                    exportID: UUID().uuidString.lowercased(), sourceStore: HexCoding.encode(storeID),
                    set: set.rawValue, token: record.token, quota: record.quota, count: allocated,
                    createdAt: Self.nowMillis()
                )
                var hasher = SHA256()
                var buffer = Data()
                buffer.reserveCapacity(1 << 20)
                func emit(_ line: String) throws {
                    let bytes = Data((line + "\n").utf8)
                    hasher.update(data: bytes)
                    buffer.append(bytes)
                    if buffer.count >= 1 << 20 {
                        try sink(buffer)
                        buffer.removeAll(keepingCapacity: true)
                    }
                }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                try emit(String(decoding: try encoder.encode(header), as: UTF8.self))
                var written = 0
                progress?(0, allocated)
                try tx.forEachRecord(in: set) { id, entry in
                    guard entry.state == .allocated else { return }
                    try emit(ExportEntry(id: id.rawValue, guest: entry.guest, data: entry.data).line())
                    written += 1
                    if written % 16384 == 0 { progress?(written, allocated) }
                }
                let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
                buffer.append(Data("{\"count\":\(written),\"end\":true,\"sha256\":\"\(digest)\"}\n".utf8))
                try sink(buffer)
                progress?(written, allocated)
                return ExportSummary(header: header, sha256: digest)
            }
        }
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
