public import LMDB

/// One step of the store's schema history.
///
/// Migrations are **immutable once landed**: a schema change adds a new
/// migration with the next number; it never edits an old one. Each runs in
/// the same write transaction as the record that says it ran.
public struct Migration: Sendable {
    /// The position in the history, starting at 1, without gaps.
    public let number: UInt32
    /// A short, stable name (recorded in the store).
    public let name: String
    /// Applies the change inside the given write transaction.
    public let apply: @Sendable (borrowing Transaction) throws -> Void

    /// Creates a migration.
    public init(number: UInt32, name: String, apply: @escaping @Sendable (borrowing Transaction) throws -> Void) {
        self.number = number
        self.name = name
        self.apply = apply
    }
}

/// The store's migrations, in order.
public enum Migrations {
    /// Every migration this code knows, oldest first.
    public static let all: [Migration] = [
        migration0001InitialSchema,
        migration0002Notifications,
        migration0003GuestIDsAndImports,
        migration0004SealedRecords,
        migration0005ConsumersAndOwners,
    ]

    /// The schema version this code writes: the number of its newest migration.
    public static var latestVersion: UInt32 { all.last?.number ?? 0 }
}
