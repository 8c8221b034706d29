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
/// Hooks are installed per environment path, so tests running side by side
/// fault (or count) only their own stores. With no hook installed (the normal
/// case) the cost is one relaxed atomic load. A hook receives the fault point
/// and returns an error code to make the call fail without running it, or
/// `nil` to let it run.
package enum FaultInjection {
    /// A hook, boxed: a closure kept directly in generic storage would be
    /// re-wrapped in a thunk on every access.
    private final class Hook: Sendable {
        let body: @Sendable (FaultPoint) -> Int32?
        init(_ body: @escaping @Sendable (FaultPoint) -> Int32?) { self.body = body }
    }

    private static let installed = Atomic<Int>(0)
    private static let hooks = Locked([String: Hook]())

    /// Installs `hook` for the environment opened at `path` (as given to
    /// `Environment.open`), replacing any hook there; `nil` removes it.
    package static func install(at path: String, _ hook: (@Sendable (FaultPoint) -> Int32?)?) {
        let count = hooks.withLock { table -> Int in
            table[path] = hook.map(Hook.init)
            return table.count
        }
        installed.store(count, ordering: .sequentiallyConsistent)
    }

    @inline(__always)
    static func call(_ point: FaultPoint, _ path: String, onInject: () -> Void = {}, _ body: () -> Int32) -> Int32 {
        if installed.load(ordering: .relaxed) > 0, let hook = hooks.withLock({ $0[path] }), let code = hook.body(point) {
            onInject()
            return code
        }
        return body()
    }
}
