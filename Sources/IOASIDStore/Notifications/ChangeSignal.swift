import Foundation
import LMDB

/// Wakes event streams of this process after each write commit.
///
/// Waiters remember the generation they saw; `notify()` bumps it and resumes
/// every waiter. Commits made by other processes (or other store instances)
/// are seen through ``watch(_:)``: a thread blocked on an inotify watch of
/// `data.mdb` (``FileChangeWatch``) notifies after every write to the file.
/// A wait also ends after a timeout: the fallback poll where inotify is not available.
final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextToken: UInt64 = 0
        var waiters = [UInt64: CheckedContinuation<Void, Never>]()
    }

    private let state = Locked(State())
    private let watcher = Locked<(started: Bool, stopping: Bool)>((false, false))

    /// Starts (once) a thread that notifies after every write to `file` by any
    /// process; returns whether the watch runs (`false`: callers keep polling).
    ///
    /// A commit's last write (the meta page) reaches the file an instant before
    /// LMDB publishes the new transaction ID to readers, so after each burst of
    /// writes the thread notifies once more, 2 ms later: a reader woken too early
    /// looks again and finds the commit.
    @discardableResult
    func watch(_ file: String) -> Bool {
        let start = watcher.withLock { w -> Bool in
            if w.started || w.stopping { return false }
            w.started = true
            return true
        }
        guard start else { return watcher.withLock { $0.started && !$0.stopping } }
        do {
            let watch = try FileChangeWatch(path: file)
            try BackgroundThread.start(name: "ioasid-watch") { [self] in
                var trailing = false
                while !watcher.withLock({ $0.stopping }) {
                    if watch.wait(milliseconds: trailing ? 2 : 250) {
                        notify()
                        trailing = true
                    } else if trailing {
                        notify()
                        trailing = false
                    }
                }
            }
        } catch {
            // No inotify instance or no thread: not watching (a later call tries again).
            watcher.withLock { $0.started = false }
            return false
        }
        return true
    }

    /// Ends the watch thread (within its 250 ms wait).
    func stopWatching() {
        watcher.withLock { $0.stopping = true }
    }

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
    private let task = Locked<Task<Void, Never>?>(nil)

    func set(_ newTask: Task<Void, Never>) { task.withLock { $0 = newTask } }
    func cancel() { task.withLock { $0?.cancel() } }
}
