import LMDB

/// The state a transaction closure works in. Its members are internal: use the
/// methods of ``ReadTransaction`` and ``WriteTransaction``.
public struct TransactionContext {
    let txn: Transaction
    let schema: Schema
    /// Values read once per transaction; cleared when the transaction changes them.
    let cache = TransactionCache()
}

/// Per-transaction memo of records that many operations read and few change.
final class TransactionCache {
    /// The subscribers, in name order; `nil` until read or after a change.
    var subscribers: [(name: String, record: SubscriberRecord)]?
}

/// Read access to the store inside one consistent snapshot; both
/// ``ReadTransaction`` and ``WriteTransaction`` conform.
public protocol IOASIDReading {
    /// The transaction's state (opaque to users of the library).
    var context: TransactionContext { get }
}

/// The argument of ``IOASIDStore/read(_:)``: lookups in one consistent snapshot.
/// Valid only inside the closure that received it.
public struct ReadTransaction: IOASIDReading {
    /// The transaction's state (opaque to users of the library).
    public let context: TransactionContext
}

/// The argument of the store's `write { }` closures: every change made through it
/// commits together, in one durable LMDB commit, or not at all.
/// Valid only inside the closure that received it.
///
/// Each operation checks all of its rules before it writes anything, so an
/// operation that throws has changed nothing, and the transaction can go on.
public struct WriteTransaction: IOASIDReading {
    /// The transaction's state (opaque to users of the library).
    public let context: TransactionContext

    var txn: Transaction { context.txn }
    var schema: Schema { context.schema }
    var freeIndex: FreeIndex { FreeIndex(txn: txn, db: schema.control) }
}
