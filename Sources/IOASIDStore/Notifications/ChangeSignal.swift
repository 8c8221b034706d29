import Foundation

/// Wakes event streams of this process after each write commit.
///
/// Waiters remember the generation they saw; `notify()` bumps it and resumes
/// every waiter. A wait also ends after a timeout, which is how streams notice
/// commits made by other processes (they poll the store).
final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextToken: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = LockedState(State())

    /// The current generation.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// Resumes every waiter.
    func notify() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.generation &+= 1
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the generation differs from `seen`, after `timeout`, or on cancellation.
    func wait(after seen: UInt64, timeout: Duration) async {
        let token = state.withLock { s -> UInt64 in
            s.nextToken &+= 1
            return s.nextToken
        }
        let timer = TimerBox()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let registered = state.withLock { s -> Bool in
                    if s.generation != seen || Task.isCancelled { return false }
                    s.waiters[token] = continuation
                    return true
                }
                guard registered else { return continuation.resume() }
                // The timer starts only once the waiter is registered, so it cannot fire too early and be lost.
                timer.set(Task { [weak self] in
                    try? await Task.sleep(for: timeout)
                    self?.resume(token)
                })
            }
        } onCancel: {
            resume(token)
        }
        timer.cancel()
    }

    private func resume(_ token: UInt64) {
        state.withLock { $0.waiters.removeValue(forKey: token) }?.resume()
    }
}

/// The timer task of one wait, cancelled when the wait ends.
private final class TimerBox: Sendable {
    private let task = LockedState<Task<Void, Never>?>(nil)

    func set(_ newTask: Task<Void, Never>) { task.withLock { $0 = newTask } }
    func cancel() { task.withLock { $0?.cancel() } }
}

/// A value guarded by an `NSLock` (a pthread mutex, which ThreadSanitizer understands).
final class LockedState<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
