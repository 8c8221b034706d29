internal import Synchronization

/// The LMDB calls at which a test can inject a failure.
package enum FaultPoint: String, Sendable, CaseIterable {
    /// `mdb_txn_begin` of a write transaction.
    case beginWrite
    /// `mdb_put`.
    case put
    /// `mdb_del`.
    case delete
    /// `mdb_txn_commit`.
    case commit
}

/// A test hook that every fault-capable `mdb_*` call passes through, the way
/// swift-system's mocking passes every syscall through one place.
///
/// With no hook installed (the normal case) the cost is one relaxed atomic load.
/// A hook receives the fault point and the environment's path, and returns an
/// error code to make the call fail without running it, or `nil` to let it run
/// (so a test can fault one store while others in the process work normally).
package enum FaultInjection {
    private static let enabled = Atomic<Bool>(false)
    private static let hook = Locked<(@Sendable (FaultPoint, String) -> Int32?)?>(nil)

    /// Installs `hook` for every environment in this process; `nil` removes it.
    package static func install(_ newHook: (@Sendable (FaultPoint, String) -> Int32?)?) {
        hook.withLock { $0 = newHook }
        enabled.store(newHook != nil, ordering: .sequentiallyConsistent)
    }

    @inline(__always)
    static func call(_ point: FaultPoint, _ path: String, onInject: () -> Void = {}, _ body: () -> Int32) -> Int32 {
        if enabled.load(ordering: .relaxed), let hook = hook.withLock({ $0 }), let code = hook(point, path) {
            onInject()
            return code
        }
        return body()
    }
}
