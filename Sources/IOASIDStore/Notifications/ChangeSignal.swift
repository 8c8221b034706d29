import Synchronization

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

    private let state = Mutex(State())

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
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            self?.resume(token)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.generation != seen || Task.isCancelled { return true }
                    s.waiters[token] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
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
