import LMDB

/// The state a transaction closure works in. Its members are internal: use the
/// methods of ``ReadTransaction`` and ``WriteTransaction``.
public struct TransactionContext: ~Copyable {
    let txn: Transaction
    let schema: Schema
    /// Per-transaction memo and bookkeeping.
    let state: TransactionState

    init(txn: borrowing Transaction, schema: Schema, state: TransactionState = TransactionState()) {
        self.txn = Transaction(lending: txn)
        self.schema = schema
        self.state = state
    }
}

/// Values read once per transaction, and the record of an operation that broke
/// the check-before-write rule.
final class TransactionState {
    /// The subscribers, in name order; `nil` until read or after a change.
    var subscribers: [(name: String, record: SubscriberRecord)]?
    /// Set when an operation threw a refusal after it had written: the
    /// transaction must not commit.
    var brokenBy: IOASIDError?
}

/// Read access to the store inside one consistent snapshot; both
/// ``ReadTransaction`` and ``WriteTransaction`` conform.
///
/// Transactions are `~Copyable` and lent (borrowed) to the closures of
/// ``IOASIDStore/read(_:)`` and ``IOASIDStore/write(_:)-(WriteTransaction)->R``: the compiler
/// refuses to let one be returned, stored or captured, so none outlives its LMDB transaction.
public protocol IOASIDReading: ~Copyable {
    /// The transaction's state (opaque to users of the library).
    var context: TransactionContext { get }
}

/// The argument of ``IOASIDStore/read(_:)``: lookups in one consistent snapshot.
/// Lent to the closure; it cannot leave it.
public struct ReadTransaction: IOASIDReading, ~Copyable {
    /// The transaction's state (opaque to users of the library).
    public let context: TransactionContext
}

/// The argument of the store's `write { }` closures: every change made through it
/// commits together, in one durable LMDB commit, or not at all.
/// Lent to the closure; it cannot leave it.
///
/// Each operation checks all of its rules before it writes anything, so an
/// operation that throws has changed nothing, and the transaction can go on.
/// The store enforces this: an operation that throws a refusal after writing
/// marks the transaction broken, and it is rolled back instead of committed.
public struct WriteTransaction: IOASIDReading, ~Copyable {
    /// The transaction's state (opaque to users of the library).
    public let context: TransactionContext
}

extension IOASIDReading where Self: ~Copyable {
    var txn: Transaction { _read { yield context.txn } }
    var schema: Schema { context.schema }
}

/// Whether a failed operation must have changed nothing: refusals, lookups
/// that found nothing and invalid arguments. Storage and corruption errors may
/// leave a transaction half-written; they abort it.
extension IOASIDError {
    var promisesNoWrites: Bool { category != .storeUnusable }
}

extension WriteTransaction {
    /// Runs one store operation under the check-before-write rule: if it throws
    /// a refusal after writing, the transaction is marked broken (it will be
    /// rolled back, never committed) and the error says so.
    ///
    /// Every public operation of ``WriteTransaction`` runs through this.
    package func operation<R>(_ body: () throws -> R) throws -> R {
        let before = txn.writeCount
        do {
            return try body()
        } catch let error as IOASIDError where error.promisesNoWrites && txn.writeCount != before {
            context.state.brokenBy = error
            if IOASIDStore.assertOnBrokenOperations {
                assertionFailure("an operation wrote before refusing (\(error)); the transaction will be rolled back")
            }
            throw IOASIDError(
                .internalError,
                "an operation wrote to the store before refusing (\(error.code): \(error.message)); the transaction was rolled back",
                cause: error
            )
        }
    }

    /// Throws when an operation broke the check-before-write rule in this transaction.
    func checkNotBroken() throws(IOASIDError) {
        if let refusal = context.state.brokenBy {
            throw IOASIDError(
                .internalError,
                "an operation wrote to the store before refusing (\(refusal.code): \(refusal.message)); the transaction was rolled back",
                cause: refusal
            )
        }
    }
}
