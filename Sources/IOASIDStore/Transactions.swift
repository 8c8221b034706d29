import IOASIDMigrations
import LMDB

/// The state a transaction closure works in. Its members are internal: use the
/// methods of ``ReadTransaction`` and ``WriteTransaction``.
///
/// Valid only inside the closure its transaction was lent to, like the transaction.
public struct TransactionContext {
    // Pointers to the lent transaction, to the store's schema and to a slot on the
    // stack of ``lend(_:schema:_:)``, all of which outlive every use: the ~Copyable
    // transaction that holds the context cannot leave the closure, and no user of
    // the library can do anything with a context. Three words, so that a lookup
    // reaches the LMDB transaction and a database handle with loads alone, where a
    // `~Copyable` context was yielded by a coroutine (which copied it to the heap) on
    // each access, and the schema, a class, was retained and released.
    private let transaction: UnsafePointer<Transaction>
    private let schemaPointer: UnsafePointer<Schema>
    /// Room for the state on that stack, and whether it is made yet (see ``state``).
    private let stateRoom: UnsafeMutablePointer<TransactionState>
    private let stateMade: UnsafeMutablePointer<Bool>

    private init(
        transaction: UnsafePointer<Transaction>, schema: UnsafePointer<Schema>,
        stateRoom: UnsafeMutablePointer<TransactionState>, stateMade: UnsafeMutablePointer<Bool>
    ) {
        self.transaction = transaction
        schemaPointer = schema
        self.stateRoom = stateRoom
        self.stateMade = stateMade
    }

    /// The LMDB transaction.
    var txn: Transaction { unsafeAddress { transaction } }

    /// The store's database handles.
    var schema: Schema { unsafeAddress { schemaPointer } }

    /// Per-transaction memo and bookkeeping, in place (no reference to count, no
    /// dynamic exclusivity check per access), made on first use: a lookup in its own
    /// read transaction never needs one.
    var state: TransactionState {
        unsafeAddress { UnsafePointer(madeState()) }
        nonmutating unsafeMutableAddress { madeState() }
    }

    @inline(__always)
    private func madeState() -> UnsafeMutablePointer<TransactionState> {
        if !stateMade.pointee {
            stateRoom.initialize(to: TransactionState())
            stateMade.pointee = true
        }
        return stateRoom
    }

    /// Runs `body` with the context of `txn`.
    static func lend<R>(_ txn: borrowing Transaction, schema: Schema, _ body: (TransactionContext) throws -> R) rethrows -> R {
        var made = false
        return try withUnsafeTemporaryAllocation(of: TransactionState.self, capacity: 1) { room in
            guard let room = room.baseAddress else { preconditionFailure("a temporary allocation of one element has an address") }
            defer { if made { room.deinitialize(count: 1) } }
            return try withUnsafePointer(to: txn) { transaction in
                try withUnsafePointer(to: schema) { schema in
                    try withUnsafeMutablePointer(to: &made) {
                        try body(TransactionContext(transaction: transaction, schema: schema, stateRoom: room, stateMade: $0))
                    }
                }
            }
        }
    }
}

/// What one transaction remembers: values read once, set records changed but
/// not yet written, and the record of an operation that broke the
/// check-before-write rule.
struct TransactionState {
    /// The capacity, once read.
    var capacity: UInt32?
    /// The private data limit, once read.
    var maximumDataSize: Int?
    /// The next event sequence, once read (kept up to date by `emit`).
    var nextSequence: UInt64?
    /// The store's ID in hex and its epoch, once read.
    var storeID: String?
    var epoch: UInt32?
    /// Whether the subscribers' lag limits were checked in this transaction.
    var lapsesChecked = false
    /// Set records read or changed in this transaction.
    var sets: [UInt32: CachedSet] = [:]
    /// Whether ``sets`` holds changes not yet written.
    var dirtySets = false
    /// Changes kept in memory so far (they count as writes for the check-before-write rule).
    private(set) var deferredWrites = 0
    /// A free extent whose lowest IDs were taken in this transaction: the
    /// extent keyed `last` now starts at `first`, not yet written (a run of
    /// lowest-free allocations rewrites it once, at the end).
    var pendingExtent: (last: UInt32, first: UInt32)?
    /// The subscribers, in name order; `nil` until read or after a change.
    /// (Read by every event an operation might emit.)
    var subscribers: [(name: String, record: SubscriberRecord)]?
    /// Set when an operation threw a refusal after it had written: the
    /// transaction must not commit.
    var brokenBy: IOASIDError?

    mutating func noteDeferredWrite() {
        deferredWrites += 1
        dirtySets = true
    }

    /// Keeps the new start of the extent keyed `last` in memory.
    mutating func deferExtent(last: UInt32, first: UInt32) {
        deferredWrites += 1
        pendingExtent = (last, first)
    }

    /// Forgets every memo (after a nested transaction changed the store underneath).
    mutating func invalidate() {
        capacity = nil
        maximumDataSize = nil
        nextSequence = nil
        epoch = nil
        lapsesChecked = false
        sets = [:]
        dirtySets = false
        subscribers = nil
    }
}

/// Read access to the store inside one consistent snapshot; both
/// ``ReadTransaction`` and ``WriteTransaction`` conform.
///
/// Transactions are `~Copyable` and lent (borrowed) to the closures of
/// ``IOASIDStore/read(_:)`` and the store's `write` methods: the compiler
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
    var schema: Schema { _read { yield context.schema } }
}

/// Whether a failed operation must have changed nothing: refusals, lookups
/// that found nothing and invalid arguments. Storage and corruption errors may
/// leave a transaction half-written; they abort it.
extension IOASIDError {
    var promisesNoWrites: Bool { category != .storeUnusable }
}

extension WriteTransaction {
    /// Writes made so far, to the file or kept in memory until commit.
    private var writesSoFar: Int { txn.writeCount + context.state.deferredWrites }

    /// Runs one store operation under the check-before-write rule: if it throws
    /// a refusal after writing, the transaction is marked broken (it will be
    /// rolled back, never committed) and the error says so.
    ///
    /// Every public operation of ``WriteTransaction`` runs through this.
    package func operation<R>(_ body: () throws -> R) throws -> R {
        let before = writesSoFar
        do {
            return try body()
        } catch let error as IOASIDError where error.promisesNoWrites && writesSoFar != before {
            context.state.brokenBy = error
            if IOASIDStore.assertOnBrokenOperations {
                assertionFailure("an operation wrote before refusing (\(error)); the transaction will be rolled back")
            }
            throw IOASIDError.broken(by: error)
        }
    }

    /// Prepares the transaction to commit: writes deferred changes, and throws
    /// when an operation broke the check-before-write rule.
    func prepareCommit() throws {
        if let refusal = context.state.brokenBy { throw IOASIDError.broken(by: refusal) }
        try checkLapses()
        try flushDeferredWrites()
    }
}

extension IOASIDError {
    static func broken(by refusal: IOASIDError) -> IOASIDError {
        IOASIDError(
            .internalError,
            "an operation wrote to the store before refusing (\(refusal.code): \(refusal.message)); the transaction was rolled back",
            cause: refusal
        )
    }
}
