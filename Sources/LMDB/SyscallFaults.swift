internal import Synchronization
#if canImport(Glibc)
internal import Glibc
#endif

/// The system calls of ``SystemFile``, ``FileSystem`` and ``DataFile`` at which a
/// test can inject a failure (the file-system counterpart of ``FaultPoint``,
/// which is keyed by environment path; these calls have no path to key by).
package enum SyscallPoint: String, Sendable, CaseIterable {
    /// `open` of a file (reading, or creating a private file).
    case open
    /// The nameless scratch file (`O_TMPFILE`); failing it takes the named fallback.
    case openTemporary
    /// `read`.
    case read
    /// `write`.
    case write
    /// `fsync` of a file.
    case fsync
    /// `lseek`.
    case seek
    /// `fstat`.
    case fstat
    /// `lstat`.
    case lstat
    /// `mkdir`.
    case mkdir
    /// `rename` (replacing or not).
    case rename
    /// `fsync` of a directory.
    case syncDirectory
    /// LMDB's copy of an environment into a descriptor (`mdb_env_copyfd2`).
    case copy
    /// The calls with which ``DataFile`` checks a store before LMDB maps it, in
    /// order: `stat` of the directory, `lstat` of `data.mdb` (and of `lock.mdb`
    /// when it is missing), `lstat` again, `open`, `fstat`, then each `pread`.
    case dataFile
    /// `pthread_create` of a ``BackgroundThread`` (the store's writer, its change watch).
    case threadStart
}

/// Makes chosen system calls fail, for tests of every error branch that a
/// full disk, an I/O error or a permission change reaches (the way
/// swift-system's mocking routes every syscall through one place).
///
/// A plan applies only inside ``failing(_:_:)`` and only to the
/// task that runs it (a task-local value), so tests running side by side do not
/// see each other's faults. Outside any plan the cost is one relaxed atomic load.
package enum SyscallFaults {
    /// One failure to inject: the `skip`+1-th call at `point` fails with `errno`.
    package struct Fault: Sendable {
        /// Where the failure goes.
        package let point: SyscallPoint
        /// The `errno` the call fails with.
        package let errno: Int32
        /// How many calls at `point` go through first.
        package let skip: Int

        package init(_ point: SyscallPoint, errno: Int32, skip: Int = 0) {
            self.point = point
            self.errno = errno
            self.skip = skip
        }
    }

    /// The faults of one ``failing(_:_:)`` scope and what they did.
    package final class Plan: Sendable {
        /// The faults, each injected at most once.
        package let faults: [Fault]
        /// Calls seen so far at each fault's point, and how many failed.
        private let counts: Locked<(seen: [Int], fired: Int)>

        init(_ faults: [Fault]) {
            self.faults = faults
            counts = Locked((seen: faults.map { _ in 0 }, fired: 0))
        }

        /// How many calls failed because of this plan: lets a test check that
        /// the failures it meant to test really happened.
        package var injected: Int { counts.withLock { $0.fired } }

        func decide(_ point: SyscallPoint) -> Int32? {
            counts.withLock { counts -> Int32? in
                var code: Int32?
                for (index, fault) in faults.enumerated() where fault.point == point {
                    counts.seen[index] += 1
                    if code == nil, counts.seen[index] == fault.skip + 1 {
                        counts.fired += 1
                        code = fault.errno
                    }
                }
                return code
            }
        }
    }

    @TaskLocal private static var plan: Plan?
    private static let plans = Atomic<Int>(0)

    /// Runs `body` with `faults` injected; returns the plan (to check
    /// ``Plan/injected``) and what `body` returned or threw.
    package static func failing<R>(_ faults: [Fault], _ body: () throws -> R) -> (plan: Plan, result: Result<R, any Error>) {
        let plan = Plan(faults)
        plans.add(1, ordering: .sequentiallyConsistent)
        defer { plans.subtract(1, ordering: .sequentiallyConsistent) }
        let result = $plan.withValue(plan) { Result { try body() } }
        return (plan, result)
    }

    /// ``failing(_:_:)`` for async work: the faults apply to `body`'s task (and
    /// the tasks it creates), across its suspensions.
    package static func failing<R>(_ faults: [Fault], _ body: () async throws -> R) async -> (plan: Plan, result: Result<R, any Error>) {
        let plan = Plan(faults)
        plans.add(1, ordering: .sequentiallyConsistent)
        defer { plans.subtract(1, ordering: .sequentiallyConsistent) }
        let result: Result<R, any Error> = await $plan.withValue(plan) {
            do { return .success(try await body()) } catch { return .failure(error) }
        }
        return (plan, result)
    }

    /// ``failing(_:_:)`` with one fault: the call at `point` fails with `errno`
    /// after `skip` calls there have gone through.
    package static func failing<R>(
        _ point: SyscallPoint, with errno: Int32, skipping skip: Int = 0, _ body: () throws -> R
    ) -> (plan: Plan, result: Result<R, any Error>) {
        failing([Fault(point, errno: errno, skip: skip)], body)
    }

    /// The `errno` to fail the call at `point` with, or `nil` to make the call
    /// (for calls that return the error code themselves, like LMDB's).
    @inline(__always)
    static func injected(_ point: SyscallPoint) -> Int32? {
        guard plans.load(ordering: .relaxed) > 0, let plan else { return nil }
        return plan.decide(point)
    }
}

/// Makes the system call `call` at `point`, or, when a plan fails it, returns
/// −1 with `errno` set as the call would have: the caller's own error handling
/// runs either way.
@inline(__always)
func faultable<T: FixedWidthInteger & SignedInteger>(_ point: SyscallPoint, _ call: () -> T) -> T {
    if let code = SyscallFaults.injected(point) {
        errno = code
        return -1
    }
    return call()
}
