import Foundation
import LMDB
import Synchronization

/// The store's dedicated writer thread: async callers enqueue operations, the
/// writer runs every operation that is waiting in **one** LMDB write
/// transaction and one durable commit (group commit), then resumes each
/// caller with its own result.
///
/// - A caller resumes only after the commit that holds its operation returned,
///   so a success is durable (in ``IOASIDStore/Durability/durable`` mode).
/// - Store operations check every rule before they write, and the transaction
///   enforces it (``WriteTransaction/operation(_:)``): an operation that is
///   refused (quota, range, wrong set…) has written nothing and fails alone; the
///   others in its group commit. One that breaks the rule throws a
///   non-refusal error, which aborts the group. Caller-supplied closures, which
///   promise nothing, run in a nested transaction that is rolled back when they throw.
/// - Any other error (an LMDB error such as `MDB_MAP_FULL`, a corrupt record)
///   aborts the whole group's transaction, so nothing half-done is committed:
///   the environment grows the map and reruns it, or each operation of the
///   group is retried alone, so one bad operation cannot fail the others.
/// - No transaction ever crosses an `await`: the transaction lives and dies on
///   the writer thread.
/// - It is a task executor too (``IOASIDStore/writerExecutor``): tasks that prefer
///   it run on the writer thread between two commits, never inside a transaction,
///   so the callers a commit resumes submit their next operations from the writer
///   thread itself before it begins the next transaction. A synchronous write from
///   such a task commits at once on that thread instead of waiting for itself.
/// - After a commit that carried more than one operation, the writer expects its
///   callers back within microseconds: it polls for their next operations, yielding
///   the processor, for up to half of that commit's working time (at most 200 µs
///   before a transaction begins) instead of sleeping on the lock's condition (on the
///   2-core development machine a wake-up cost more than their round trip:
///   `docs/benchmarks.md`). After a commit of one it sleeps.
final class GroupCommitWriter: TaskExecutor, Sendable {
    private struct State {
        var queue: [Job] = []
        /// Tasks that prefer this executor, run on the writer thread between commits.
        var tasks: [UnownedJob] = []
        var started = false
        var stopping = false
    }

    private let state = Locked(State())
    /// Operations queued (`state.queue`), plus one once ``stop()`` was called, and tasks
    /// queued (`state.tasks`): set under the lock (``publish(_:)``), polled by the writer
    /// without it while it expects callers back.
    private let jobsWaiting = Atomic<Int>(0)
    private let tasksWaiting = Atomic<Int>(0)
    /// The running writer thread's ID (``currentThreadID``), 0 when none runs.
    private let thread = Atomic<UInt>(0)
    private let maxBatch: Int
    /// Operations in the last commit and how long it took (writer thread only).
    private let pace = Locked((operations: 0, nanoseconds: 0))
    private let commit: @Sendable ((borrowing WriteTransaction) throws -> Void) throws -> Void
    /// Told the size and duration of each group commit (metrics).
    private let observer = Locked<(@Sendable (Int, Duration) -> Void)?>(nil)

    /// - Parameter commit: runs a closure in one write transaction and commits it.
    init(maxBatch: Int, commit: @escaping @Sendable ((borrowing WriteTransaction) throws -> Void) throws -> Void) {
        self.maxBatch = max(1, maxBatch)
        self.commit = commit
    }

    /// Runs `body` in the next group commit and returns its result once that commit is durable.
    func submit<R: Sendable>(
        isolated: Bool,
        _ body: @escaping @Sendable (borrowing WriteTransaction) throws -> R
    ) async throws -> R {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, any Error>) in
            enqueue(Job(isolated: isolated, body: body, complete: { continuation.resume(with: $0) }))
        }
    }

    /// ``submit(isolated:_:)`` with a completion: `complete` runs on the writer's
    /// thread once the commit holding `body` is durable, or failed.
    func submit<R>(
        isolated: Bool,
        _ body: @escaping (borrowing WriteTransaction) throws -> R,
        complete: @escaping (Result<R, any Error>) -> Void
    ) {
        enqueue(Job(isolated: isolated, body: body, complete: complete))
    }

    /// ``submit(isolated:_:)`` for a synchronous caller: blocks the calling thread
    /// until the commit holding `body` is durable. On the writer thread itself (a
    /// task on this executor, between two commits) it commits `body` at once, alone.
    func submitAndWait<R>(isolated: Bool, _ body: (borrowing WriteTransaction) throws -> R) throws -> R {
        try withoutActuallyEscaping(body) { escaping in
            // The writer drops its reference to `escaping` before the caller resumes
            // (withoutActuallyEscaping checks that nothing kept it).
            let box = UncheckedBox<((borrowing WriteTransaction) throws -> R)?>(escaping)
            let outcome = UncheckedBox<Result<R, any Error>?>(nil)
            let done = DispatchSemaphore(value: 0)
            let job = Job(isolated: isolated, body: { tx in
                guard let body = box.value else { throw IOASIDError(.internalError, "an operation ran after its caller resumed") }
                return UncheckedBox(try body(tx))
            }, complete: { result in
                box.value = nil
                outcome.value = result.map(\.value)
                done.signal()
            })
            if onWriterThread {
                // A task on this executor, between two commits: its write is a commit of its own.
                let clock = ContinuousClock()
                let started = clock.now
                tellObserver(execute([job], gathering: nil, clock: clock), clock.now - started)
            } else {
                enqueue(job)
            }
            done.wait()
            guard let result = outcome.value else { throw IOASIDError(.storageFailure, "operation did not run") }
            return try result.get()
        }
    }

    /// Runs a task that prefers this executor on the writer thread, between two commits.
    /// Once the store is gone (``stop()`` called and the thread ended), a task that still
    /// prefers this executor runs on the global one: no thread is started for it.
    func enqueue(_ job: consuming ExecutorJob) {
        let task = UnownedJob(job)
        if !add({ $0.tasks.append(task) }, unlessStopped: true) {
            globalConcurrentExecutor.enqueue(ExecutorJob(task))
        }
    }

    /// Whether the caller runs on the writer thread.
    var onWriterThread: Bool {
        thread.load(ordering: .acquiring) == Self.currentThreadID
    }

    /// Processor time the writer thread has used so far, `nil` when no writer thread
    /// runs (tests: the caller keeps the store open and not stopping meanwhile, so the
    /// thread cannot end between the load and the clock read).
    /// Linux only (`pthread_getcpuclockid`); `nil` elsewhere.
    var threadCPUTime: Duration? {
        #if canImport(Glibc)
        let id = thread.load(ordering: .acquiring)
        guard id != 0 else { return nil }
        var cpuClock = clockid_t()
        guard pthread_getcpuclockid(pthread_t(id), &cpuClock) == 0 else { return nil }
        var now = timespec()
        guard clock_gettime(cpuClock, &now) == 0 else { return nil }
        return .seconds(now.tv_sec) + .nanoseconds(now.tv_nsec)
        #else
        return nil
        #endif
    }

    /// The calling thread's `pthread_t` as a number (never 0 for a running thread).
    private static var currentThreadID: UInt {
        #if canImport(Darwin)
        UInt(bitPattern: pthread_self())
        #else
        UInt(pthread_self())
        #endif
    }

    /// Calls `body` with each group commit's size and duration, on the writer thread.
    func observe(_ body: @escaping @Sendable (Int, Duration) -> Void) {
        observer.withLock { $0 = body }
    }

    private func enqueue(_ job: Job) {
        add { $0.queue.append(job) }
    }

    /// Queues work with `append` and starts the writer thread if none runs; with
    /// `unlessStopped`, queues nothing and returns `false` when ``stop()`` was called
    /// and no thread runs.
    @discardableResult
    private func add(_ append: (inout State) -> Void, unlessStopped: Bool = false) -> Bool {
        let (added, start) = state.withLockSignalling { s -> (Bool, Bool) in
            if unlessStopped && s.stopping && !s.started { return (false, false) }
            append(&s)
            publish(s)
            defer { s.started = true }
            return (true, !s.started)
        }
        if start { startThread() }
        return added
    }

    /// Calls the observer, if any, with a commit's size and duration.
    private func tellObserver(_ size: Int, _ elapsed: Duration) {
        if let observe = observer.withLock({ $0 }) { observe(size, elapsed) }
    }

    /// What the writer thread does next.
    private enum Work {
        /// Run tasks that prefer this executor (outside any transaction).
        case tasks([UnownedJob])
        /// Commit these operations, and those that join them, as one group.
        case group([Job])
        /// End the thread: stopping, and nothing left.
        case end
    }

    private func startThread() {
        do {
            try BackgroundThread.start(name: "ioasid-writer") { [self] in run() }
        } catch {
            // No thread to spare: fail what is queued (nothing ran) and let the next caller try again.
            let (stranded, tasks) = state.withLock { s -> ([Job], [UnownedJob]) in
                defer { s.queue = []; s.tasks = []; s.started = false; publish(s) }
                return (s.queue, s.tasks)
            }
            let failure = IOASIDError(.storageFailure, "cannot start the store's writer thread", cause: error)
            for job in stranded { job.fail(failure) }
            // The tasks go on elsewhere; a store call they make tries to start the thread again.
            for task in tasks { globalConcurrentExecutor.enqueue(ExecutorJob(task)) }
        }
    }

    /// Stops the thread once the queue is empty.
    func stop() {
        state.withLockSignalling { s in
            s.stopping = true
            publish(s)
        }
    }

    private func run() {
        let clock = ContinuousClock()
        // Only this thread stores its own ID, so only this thread can read it back as its own.
        thread.store(Self.currentThreadID, ordering: .releasing)
        var pollUntil: ContinuousClock.Instant?
        while true {
            // Once after a commit of several operations: its callers come back within
            // microseconds, so poll for them for a while instead of sleeping.
            if let until = pollUntil {
                pollUntil = nil
                pollForWork(until: until, tasks: true, clock: clock)
            }
            let work = state.withLock(waitingUntil: { !$0.queue.isEmpty || !$0.tasks.isEmpty || $0.stopping }) { s -> Work in
                // Tasks on this executor first, outside any transaction: callers that the
                // last commit resumed here submit their next operations without a thread hop.
                if !s.tasks.isEmpty {
                    defer { s.tasks = []; publish(s) }
                    return .tasks(s.tasks)
                }
                if s.queue.isEmpty {
                    // A task enqueued after this starts the thread again.
                    thread.store(0, ordering: .releasing)
                    s.started = false
                    return .end
                }
                let batch = Array(s.queue.prefix(maxBatch))
                s.queue.removeFirst(batch.count)
                publish(s)
                return .group(batch)
            }
            let first: [Job]
            switch work {
            case .end:
                return
            case .tasks(let tasks):
                for task in tasks { task.runSynchronously(on: asUnownedTaskExecutor()) }
                continue
            case .group(let batch):
                first = batch
            }
            // Keep commits full under steady load: callers resumed by the last commit
            // come back a moment later, so when fewer are waiting than it carried, the
            // transaction takes them as they arrive, for up to half the last commit's
            // working time (never when a caller is alone), and runs each at once: the
            // work of the early ones overlaps the wait for the late ones.
            let (last, working) = pace.withLock { $0 }
            let wanted = min(last, maxBatch)
            let gather = Gathering(
                wanted: wanted,
                deadline: clock.now + .nanoseconds(wanted > 1 ? min(working / 2, 2_000_000) : 0)
            )
            let started = clock.now
            let size = execute(first, gathering: gather, clock: clock)
            let elapsed = clock.now - started
            let waited = gather.waited
            let nanoseconds = max(0, Self.nanoseconds(elapsed) - Self.nanoseconds(waited))
            pace.withLock { $0 = (size, nanoseconds) }
            if size > 1 { pollUntil = clock.now + .nanoseconds(min(nanoseconds / 2, 200_000)) }
            tellObserver(size, elapsed)
        }
    }

    /// Makes the queue's length (and whether the writer stops) visible to ``pollForWork(until:tasks:clock:)``;
    /// called with the lock held, after every change.
    private func publish(_ s: borrowing State) {
        jobsWaiting.store(s.queue.count + (s.stopping ? 1 : 0), ordering: .releasing)
        tasksWaiting.store(s.tasks.count, ordering: .releasing)
    }

    /// Returns once an operation is queued (or, with `tasks`, a task), ``stop()`` was
    /// called, or at `deadline`, polling without the lock and yielding the processor
    /// between two looks.
    private func pollForWork(until deadline: ContinuousClock.Instant, tasks: Bool, clock: ContinuousClock) {
        while jobsWaiting.load(ordering: .acquiring) == 0,
              !tasks || tasksWaiting.load(ordering: .acquiring) == 0,
              clock.now < deadline {
            sched_yield()
        }
    }

    private static func nanoseconds(_ d: Duration) -> Int {
        Int(d.components.seconds) * 1_000_000_000 + Int(d.components.attoseconds / 1_000_000_000)
    }

    /// How many operations one transaction waits for, until when, and how long it waited.
    private final class Gathering {
        let wanted: Int
        let deadline: ContinuousClock.Instant
        var waited: Duration = .zero
        init(wanted: Int, deadline: ContinuousClock.Instant) {
            self.wanted = wanted
            self.deadline = deadline
        }
    }

    /// Runs `first` and, while fewer than `gathering.wanted` operations are in the
    /// transaction and its deadline has not passed, those that arrive meanwhile;
    /// commits them together. Returns how many it committed (or failed).
    @discardableResult
    private func execute(_ first: [Job], gathering: Gathering?, clock: ContinuousClock) -> Int {
        var taken = first
        do {
            try commit { tx in
                // The environment may run this again (after growing the map): the same jobs first.
                for job in taken { try job.run(tx) }
                guard let gathering else { return }
                while taken.count < gathering.wanted, taken.count < maxBatch {
                    var now = clock.now
                    guard now < gathering.deadline else { break }
                    pollForWork(until: gathering.deadline, tasks: false, clock: clock)
                    gathering.waited += clock.now - now
                    now = clock.now
                    let more = state.withLock(
                        waitingUntil: { !$0.queue.isEmpty || $0.stopping },
                        atMost: Self.nanoseconds(gathering.deadline - now)
                    ) { s -> [Job] in
                        let batch = Array(s.queue.prefix(maxBatch - taken.count))
                        s.queue.removeFirst(batch.count)
                        publish(s)
                        return batch
                    }
                    gathering.waited += clock.now - now
                    if more.isEmpty { break }
                    // All of them are taken before any runs: when one throws, the group is
                    // retried job by job, and a job left out of `taken` would never complete.
                    taken.append(contentsOf: more)
                    for job in more { try job.run(tx) }
                }
            }
            for job in taken { job.finish() }
        } catch {
            if taken.count == 1 {
                taken[0].fail(error)
            } else {
                // One bad operation must not fail the others: each alone.
                for job in taken { execute([job], gathering: nil, clock: clock) }
            }
        }
        return taken.count
    }
}

/// One queued operation and the caller waiting for it.
///
/// `run` keeps a clean failure — an error that promises no writes (a store
/// refusal), or any error of a closure whose nested transaction was rolled
/// back — as the job's result, and rethrows everything else (an LMDB error, a
/// corrupt store, an operation that wrote before refusing), which aborts the
/// whole group.
private final class Job: @unchecked Sendable {
    let run: (borrowing WriteTransaction) throws -> Void
    let finish: () -> Void
    let fail: (any Error) -> Void

    init<R>(
        isolated: Bool,
        body: @escaping (borrowing WriteTransaction) throws -> R,
        complete: @escaping (Result<R, any Error>) -> Void
    ) {
        let box = ResultBox()
        run = { tx in
            do {
                if isolated {
                    // The child reads through LMDB: write what the parent kept in memory
                    // first, and drop the parent's memo afterwards (the child may change it).
                    try tx.flushDeferredWrites()
                    defer { tx.context.state.invalidate() }
                    let schema = tx.schema
                    box.result = .success(try tx.txn.nested { child in
                        try TransactionContext.lend(child, schema: schema) { context in
                            let childTx = WriteTransaction(context: context)
                            let result = try body(childTx)
                            try childTx.prepareCommit()
                            return result
                        }
                    })
                } else {
                    box.result = .success(try body(tx))
                }
            } catch let error as LMDBError {
                throw error
            } catch let error as IOASIDError where isolated || error.promisesNoWrites {
                box.result = .failure(error)
            } catch let error as IOASIDError {
                throw error
            } catch {
                guard isolated else { throw error }
                box.result = .failure(error)
            }
        }
        finish = { complete(box.typed(R.self)) }
        fail = { complete(.failure($0)) }
    }
}

/// A job's result, written and read only on the writer thread.
///
/// Not generic: the deinit of a generic class is not specialised, and looked up
/// `Result<R, any Error>?`'s metadata in the runtime's cache for every job (about 4% of
/// the writer thread's processor time outside I/O with 64 callers, `docs/benchmarks.md`).
/// The value is kept as `Any` and cast back once, when the caller is resumed: inline when
/// it fits in three words (the store's own results: an ID, a flag, an array), in one
/// allocation otherwise (the service's answers, which carry a string) — either way
/// cheaper than the two lookups. `resultsComeBackAsReturned` checks the round trip.
private final class ResultBox: @unchecked Sendable {
    var result: Result<Any, any Error>?

    /// The result as the caller's type.
    func typed<R>(_: R.Type) -> Result<R, any Error> {
        switch result {
        case .success(let value)?:
            guard let value = value as? R else {
                return .failure(IOASIDError(.internalError, "an operation's result was not of the type its caller expects"))
            }
            return .success(value)
        case .failure(let error)?:
            return .failure(error)
        case nil:
            return .failure(IOASIDError(.storageFailure, "operation did not run"))
        }
    }
}

/// A value handed between a blocked caller and the writer thread, which never
/// touch it at the same time (the caller waits on a semaphore meanwhile).
private final class UncheckedBox<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
