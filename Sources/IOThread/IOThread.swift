import Foundation
import Synchronization

/// A dedicated OS thread that runs submitted jobs one at a time, in order.
///
/// libpq and rabbitmq-c block their calling thread and are not safe to use from two
/// threads at once. Each connection owns one `IOThread`, so its blocking calls never occupy
/// Swift's cooperative thread pool and are serialized by construction.
public final class IOThread: Sendable {
    /// The error thrown by ``run(_:)`` after ``shutdown()``.
    public struct Stopped: Error, CustomStringConvertible {
        public var description: String { "the connection's I/O thread has stopped" }
    }

    private let queue: JobQueue

    /// Starts a thread called `name` (visible in debuggers and `top -H`).
    public init(name: String) {
        let queue = JobQueue()
        self.queue = queue
        // The thread holds the queue, not `self`, so dropping the last `IOThread` reference
        // stops the thread through `deinit`.
        let thread = Thread {
            queue.owner.withLock { $0 = pthread_self() }
            queue.drain()
        }
        thread.name = name
        // A task that prefers this thread (see the `TaskExecutor` conformance) runs its
        // synchronous calls on this stack: as deep a one as the cooperative pool's threads.
        thread.stackSize = 8 << 20
        thread.start()
    }

    deinit { queue.stop() }

    /// Runs `body` on the thread and returns its result to the caller's task.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let accepted = queue.submit {
                continuation.resume(with: Result { try body() })
            }
            if !accepted { continuation.resume(throwing: Stopped()) }
        }
    }

    /// Whether the caller is running on this thread (a job, or a task that prefers it).
    public var isCurrent: Bool {
        queue.owner.withLock { owner in owner.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }

    /// Queues `body` without waiting for it. Returns false when the thread has stopped.
    @discardableResult
    public func submit(_ body: @escaping @Sendable () -> Void) -> Bool {
        queue.submit(body)
    }

    /// Stops the thread once the jobs already queued have run.
    public func shutdown() { queue.stop() }
}

/// An `IOThread` is also a task executor: a task that prefers it
/// (`withTaskExecutorPreference`) runs its code between blocking calls on this same thread,
/// so a ``run(_:)`` call from that task costs no thread switch on the way there or back. A
/// pooled database session's borrower runs this way: a transaction's statements, and the
/// code between them, wake no other thread.
extension IOThread: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        if !queue.submit({ job.runSynchronously(on: executor) }) {
            // The thread has stopped (its session was closed) while a task still prefers it:
            // the task goes on on the global executor, never left without a thread.
            globalConcurrentExecutor.enqueue(ExecutorJob(job))
        }
    }
}

/// The job list shared between submitters and the thread, guarded by a condition variable.
private final class JobQueue: @unchecked Sendable {
    /// The thread that drains the queue, once it has started.
    let owner = Mutex<pthread_t?>(nil)
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopped = false

    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    /// The thread's body: runs batches of jobs until stopped and empty.
    func drain() {
        var batch: [@Sendable () -> Void] = []
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                condition.unlock()
                return
            }
            swap(&batch, &jobs)
            condition.unlock()
            for job in batch { job() }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
