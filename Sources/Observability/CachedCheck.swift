import Foundation
import Synchronization

/// A health check that answers within a deadline and at most once per `ttl`, whatever the
/// peer does: `/ready` must answer in time even while a dependency hangs, and calling it in
/// a loop must not open connections or run queries at will.
///
/// Callers within `ttl` of the last result get that result. Otherwise one run of the check
/// starts (concurrent callers share it) and each caller waits for it at most `deadline`;
/// a check still running then reads as failed ("no answer within …") and keeps running in
/// the background, bounded by its own timeouts, so slow checks never pile up.
package final class CachedCheck: Sendable {
    /// What a run found.
    package struct Result: Sendable, Equatable {
        /// Whether the dependency is usable.
        package let ok: Bool
        /// `ok`, or why not (safe to show: no internal error text).
        package let detail: String
        /// Creates a result.
        package init(ok: Bool, detail: String) {
            self.ok = ok
            self.detail = detail
        }
    }

    private struct State {
        var last: (result: Result, at: ContinuousClock.Instant)?
        var running: Task<Result, Never>?
    }

    private let ttl: Duration
    private let deadline: Duration
    private let body: @Sendable () async -> Result
    private let state = Mutex(State())

    /// A check that runs `body`, remembers its result for `ttl` and waits for it at most
    /// `deadline`.
    package init(ttl: Duration = .seconds(1), deadline: Duration = .milliseconds(1500), _ body: @escaping @Sendable () async -> Result) {
        self.ttl = ttl
        self.deadline = deadline
        self.body = body
    }

    /// A check from a throwing probe: thrown errors read as `failure`.
    package convenience init(
        ttl: Duration = .seconds(1), deadline: Duration = .milliseconds(1500), failure: String = "unavailable",
        _ probe: @escaping @Sendable () async throws -> Void
    ) {
        self.init(ttl: ttl, deadline: deadline) {
            do {
                try await probe()
                return Result(ok: true, detail: "ok")
            } catch {
                return Result(ok: false, detail: failure)
            }
        }
    }

    /// The latest result no older than `ttl`, or a new one within `deadline`.
    package func result() async -> Result {
        let now = ContinuousClock.now
        let task = state.withLock { state -> Task<Result, Never>? in
            if let last = state.last, now - last.at < ttl { return nil }
            if let running = state.running { return running }
            let body = self.body
            let task = Task { await body() }
            state.running = task
            Task { [weak self] in
                let result = await task.value
                self?.state.withLock { state in
                    state.last = (result, .now)
                    state.running = nil
                }
            }
            return task
        }
        guard let task else { return state.withLock { $0.last!.result } }
        let deadline = self.deadline
        // Whichever comes first answers: the check or the deadline. (A task group would wait
        // for the check to end before returning.)
        return await withCheckedContinuation { (continuation: CheckedContinuation<Result, Never>) in
            let once = FirstAnswer()
            let answer: @Sendable (Result) -> Void = { result in
                if once.claim() { continuation.resume(returning: result) }
            }
            Task { answer(await task.value) }
            Task {
                try? await Task.sleep(for: deadline)
                answer(Result(ok: false, detail: "no answer within \(deadline)"))
            }
        }
    }
}

/// True for the first caller of ``claim()`` only.
private final class FirstAnswer: Sendable {
    private let taken = Mutex(false)
    func claim() -> Bool {
        taken.withLock { taken in
            defer { taken = true }
            return !taken
        }
    }
}
