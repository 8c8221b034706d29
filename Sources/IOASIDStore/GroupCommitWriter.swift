import Foundation
import LMDB

/// The store's dedicated writer thread: async callers enqueue operations, the
/// writer runs every operation that is waiting in **one** LMDB write
/// transaction and one durable commit (group commit), then resumes each
/// caller with its own result.
///
/// - A caller resumes only after the commit that holds its operation returned,
///   so a success is durable (in ``IOASIDStore/Durability/durable`` mode).
/// - Store operations check every rule before they write, so an operation that
///   is refused (quota, range, wrong set…) has written nothing and fails alone;
///   the others in its group commit. Caller-supplied closures, which promise no
///   such thing, run in a nested transaction that is rolled back when they throw.
/// - If the group's transaction itself fails (an I/O error at commit, say), each
///   of its operations is retried alone, so one bad operation cannot fail others.
/// - No transaction ever crosses an `await`: the transaction lives and dies on
///   the writer thread.
final class GroupCommitWriter: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var started = false
    private var stopping = false
    private let maxBatch: Int
    private let commit: @Sendable ((WriteTransaction) throws -> Void) throws -> Void

    /// - Parameter commit: runs a closure in one write transaction and commits it.
    init(maxBatch: Int, commit: @escaping @Sendable ((WriteTransaction) throws -> Void) throws -> Void) {
        self.maxBatch = max(1, maxBatch)
        self.commit = commit
    }

    /// Runs `body` in the next group commit and returns its result once that commit is durable.
    func submit<R: Sendable>(
        isolated: Bool,
        _ body: @escaping @Sendable (WriteTransaction) throws -> R
    ) async throws -> R {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, any Error>) in
            let job = Job(isolated: isolated, body: body, continuation: continuation)
            condition.lock()
            queue.append(job)
            if !started {
                started = true
                let thread = Thread { [self] in run() }
                thread.name = "ioasid-writer"
                thread.start()
            }
            condition.signal()
            condition.unlock()
        }
    }

    /// Stops the thread once the queue is empty.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && stopping {
                condition.unlock()
                return
            }
            let batch = Array(queue.prefix(maxBatch))
            queue.removeFirst(batch.count)
            condition.unlock()
            execute(batch)
        }
    }

    private func execute(_ batch: [Job]) {
        do {
            try commit { tx in
                for job in batch { try job.run(tx) }
            }
            for job in batch { job.finish() }
        } catch {
            if batch.count == 1 {
                batch[0].fail(error)
            } else {
                for job in batch { execute([job]) }
            }
        }
    }
}

/// One queued operation and the caller waiting for it.
///
/// `run` keeps a clean failure — a store refusal (which wrote nothing), or any
/// error of a closure whose nested transaction was rolled back — as the job's
/// result, and rethrows everything else (an LMDB error such as `MDB_MAP_FULL`,
/// a corrupt store), which aborts the whole group: the environment can then grow
/// the map and rerun it, or the writer retries each job alone.
private final class Job: @unchecked Sendable {
    let run: (WriteTransaction) throws -> Void
    let finish: () -> Void
    let fail: (any Error) -> Void

    init<R: Sendable>(
        isolated: Bool,
        body: @escaping @Sendable (WriteTransaction) throws -> R,
        continuation: CheckedContinuation<R, any Error>
    ) {
        let box = ResultBox<R>()
        run = { tx in
            do {
                if isolated {
                    // The child may change what the parent cached: drop the parent's memo afterwards.
                    defer { tx.context.cache.subscribers = nil }
                    box.result = .success(try tx.txn.nested { child in
                        try body(WriteTransaction(context: TransactionContext(txn: child, schema: tx.schema)))
                    })
                } else {
                    box.result = .success(try body(tx))
                }
            } catch let error as LMDBError {
                throw error
            } catch let error as IOASIDError where isolated || error.category != .storeUnusable {
                box.result = .failure(error)
            } catch let error as IOASIDError {
                throw error
            } catch {
                guard isolated else { throw error }
                box.result = .failure(error)
            }
        }
        finish = { continuation.resume(with: box.result ?? .failure(IOASIDError(.storageFailure, "operation did not run"))) }
        fail = { continuation.resume(throwing: $0) }
    }
}

/// A job's result, written and read only on the writer thread.
private final class ResultBox<R>: @unchecked Sendable {
    var result: Result<R, any Error>?
}
