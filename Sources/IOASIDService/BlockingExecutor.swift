import Foundation
import LMDB

/// Threads that may block, as a Swift task executor: commands run for clients
/// (``CommandRunner``) make synchronous store writes that wait for their group
/// commit, so they run here, never on the cooperative pool or an event loop.
final class BlockingExecutor: TaskExecutor, Sendable {
    private let queue = Locked<(jobs: [UnownedJob], stopping: Bool)>(([], false))

    /// Starts `threads` threads (at least one).
    ///
    /// - Throws: the `pthread_create` error when not even one can be started.
    init(threads: Int, name: String) throws(LMDBError) {
        for index in 0..<max(1, threads) {
            do {
                try BackgroundThread.start(name: "\(name)-\(index)") { [self] in work() }
            } catch {
                // Fewer threads than asked serve as well, only with less overlap.
                if index == 0 { throw error }
                break
            }
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        queue.withLockSignallingOne { $0.jobs.append(unowned) }
    }

    /// Lets the threads end once the queue is empty.
    func shutdown() {
        queue.withLockSignalling { $0.stopping = true }
    }

    private func work() {
        while let job = queue.withLock(waitingUntil: { !$0.jobs.isEmpty || $0.stopping }, { $0.jobs.isEmpty ? nil : $0.jobs.removeFirst() }) {
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
