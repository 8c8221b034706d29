#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A value guarded by a `pthread_mutex_t`, with a condition variable for
/// waiting until the value changes: the package's one lock type.
///
/// Used instead of `Synchronization.Mutex` because ThreadSanitizer understands
/// pthread mutexes, so `Tools/test --tsan` sees the synchronisation.
package final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    /// Guards `value`.
    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value while holding the lock.
    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }

    /// Waits (releasing the lock meanwhile) until `ready` holds for the value,
    /// then runs `body` with the lock held.
    package func withLock<R, E: Error>(
        waitingUntil ready: (borrowing Value) -> Bool,
        _ body: (inout Value) throws(E) -> R
    ) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !ready(value) { pthread_cond_wait(condition, mutex) }
        return try body(&value)
    }

    /// Waits (releasing the lock meanwhile) until `ready` holds for the value or
    /// `nanoseconds` have passed, then runs `body` with the lock held.
    package func withLock<R, E: Error>(
        waitingUntil ready: (borrowing Value) -> Bool,
        atMost nanoseconds: Int,
        _ body: (inout Value) throws(E) -> R
    ) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if !ready(value), nanoseconds > 0 {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let total = Int(now.tv_nsec) + nanoseconds
            var deadline = timespec(tv_sec: now.tv_sec + total / 1_000_000_000, tv_nsec: total % 1_000_000_000)
            while !ready(value) {
                if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
            }
        }
        return try body(&value)
    }

    /// Runs `body` with the lock held, then wakes one thread waiting in
    /// ``withLock(waitingUntil:_:)`` (for a queue whose waiters are alike).
    package func withLockSignallingOne<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        try withLock(waking: { pthread_cond_signal($0) }, body)
    }

    /// Runs `body` with the lock held, then wakes every thread waiting in
    /// ``withLock(waitingUntil:_:)``.
    package func withLockSignalling<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        try withLock(waking: { pthread_cond_broadcast($0) }, body)
    }

    private func withLock<R, E: Error>(
        waking wake: (UnsafeMutablePointer<pthread_cond_t>) -> Int32,
        _ body: (inout Value) throws(E) -> R
    ) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer {
            // Wake after unlocking: a waiter woken under the lock would at once block on
            // it again (a futex wait and a context switch more). Waiters check their
            // condition again under the lock, so a wake-up after the unlock is never lost.
            pthread_mutex_unlock(mutex)
            _ = wake(condition)
        }
        return try body(&value)
    }
}
