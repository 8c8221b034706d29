import Dispatch

/// A task executor of its own serial dispatch queue, for test callers that must not wait
/// for Swift's cooperative pool.
///
/// While the suite runs, tests that wait for child processes hold the pool's threads (one
/// per core), and a task on the pool can then wait minutes for a turn: a test with a time
/// limit whose callers hop through the pool fails for that alone. A serial queue of
/// libdispatch over-commits (it gets a thread even when the pool's are busy), so callers on
/// this executor go on.
package final class QueueExecutor: TaskExecutor {
    private let queue: DispatchQueue

    /// An executor whose tasks run one at a time on a queue named `label`.
    package init(label: String) {
        queue = DispatchQueue(label: label)
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
