import IOASIDMigrations
import LMDB

/// The migration freeze: while a set is exported its namespace must not
/// change, so allocation, free, attach, detach, quota changes and free-set in
/// it are refused; lookups still work.
extension IOASIDReading where Self: ~Copyable {
    /// The record of a live set that is not frozen: one whose namespace may
    /// change. The one definition of the freeze rule.
    func changeableSetRecord(_ set: SetID) throws -> SetRecord {
        let record = try liveSetRecord(set)
        guard !record.flags.contains(.frozen) else {
            throw IOASIDError(.setFrozen, "set \(set) is frozen for migration")
        }
        return record
    }
}

extension WriteTransaction {
    /// Freezes a set for migration. Freezing a frozen set does nothing.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSet``, ``IOASIDError/Code-swift.struct/systemSetProtected``.
    public func freeze(_ set: SetID) throws {
        try operation {
            var record = try liveSetRecord(set)
            try checkNotSystem(set, record, doing: "migrated")
            guard !record.flags.contains(.frozen) else { return }
            record.flags.insert(.frozen)
            putSet(record, set)
        }
    }

    /// Ends a migration at the source: unfreezes the set, then frees and
    /// destroys it (FREE events as usual).
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSet``, ``IOASIDError/Code-swift.struct/setNotFrozen``.
    @discardableResult
    public func completeMigration(of set: SetID) throws -> FreeSetResult {
        try operation {
            try unfreeze(set)
            return try freeSet(set, destroy: true)
        }
    }

    /// Abandons a migration at the source: the set is unfrozen and carries on.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/noSuchSet``, ``IOASIDError/Code-swift.struct/setNotFrozen``.
    public func abortMigration(of set: SetID) throws {
        try operation { try unfreeze(set) }
    }

    private func unfreeze(_ set: SetID) throws {
        var record = try liveSetRecord(set)
        guard record.flags.contains(.frozen) else {
            throw IOASIDError(.setNotFrozen, "set \(set) is not being migrated")
        }
        record.flags.remove(.frozen)
        putSet(record, set)
    }
}
