import Foundation
import Logging
import Metrics
import Postgres
import Synchronization

/// A circuit breaker for a dependency the worker cannot work without (its database).
///
/// When handling a message fails because the dependency itself is unavailable (unreachable,
/// refusing connections, not answering within the deadline), that is not the message's
/// fault: the worker trips the breaker and holds the message instead of spending one of its
/// retry attempts. While the breaker is open, no delivery starts work; one prober checks the
/// dependency with growing delays and closes the breaker when it answers, and every held
/// message is tried again. Held deliveries stay unacknowledged with the broker, which does
/// not count them against the queue's delivery limit, and prefetch keeps more from arriving,
/// so the worker effectively stops consuming.
package final class DependencyBreaker: Sendable {
    /// What the breaker reports while open.
    package struct Pause: Sendable, Equatable {
        /// The dependency, e.g. `postgres`.
        package let dependency: String
        /// Why it was judged unavailable (the first error's message).
        package let reason: String
        /// When the pause began.
        package let since: Date
    }

    /// How a wait for the dependency ended.
    package enum Outcome: Sendable {
        /// The dependency answers: go ahead.
        case available
        /// The process is shutting down: leave the message to the broker.
        case stopping
    }

    private struct State {
        var pause: Pause?
        var waiters: [CheckedContinuation<Outcome, Never>] = []
        var stopping = false
        var pauses = 0
    }

    /// The dependency's name in logs, metrics and `/ready`.
    package let dependency: String
    private let probe: @Sendable () async throws -> Void
    private let firstProbeDelay: Duration
    private let maxProbeDelay: Duration
    private let logger: Logger
    private let state = Mutex(State())
    private let pausedGauge: Gauge

    /// Creates a closed breaker for `dependency`; `probe` throws while it is unavailable.
    package init(
        dependency: String, firstProbeDelay: Duration = .milliseconds(250), maxProbeDelay: Duration = .seconds(5),
        logger: Logger, probe: @escaping @Sendable () async throws -> Void
    ) {
        self.dependency = dependency
        self.probe = probe
        self.firstProbeDelay = firstProbeDelay
        self.maxProbeDelay = maxProbeDelay
        self.logger = logger
        pausedGauge = Gauge(label: "worker_paused", dimensions: [("dependency", dependency)])
        pausedGauge.record(0)
    }

    /// A breaker over a PostgreSQL pool, probed with `SELECT 1`.
    package static func postgres(_ pool: PostgresPool, logger: Logger) -> DependencyBreaker {
        DependencyBreaker(dependency: "postgres", logger: logger) { try await pool.ping() }
    }

    /// The current pause, or nil while the dependency is available.
    package var pause: Pause? { state.withLock { $0.pause } }

    /// How many times the breaker opened since the process started.
    package var pauses: Int { state.withLock { $0.pauses } }

    /// Returns at once while the dependency is available; otherwise waits until the prober
    /// finds it back, or until ``stop()``.
    package func waitUntilAvailable() async -> Outcome {
        await withCheckedContinuation { continuation in
            let immediate = state.withLock { state -> Outcome? in
                if state.stopping { return .stopping }
                guard state.pause != nil else { return .available }
                state.waiters.append(continuation)
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    /// Opens the breaker because `error` showed the dependency unavailable; the first report
    /// starts the prober. Later reports while open change nothing.
    package func reportUnavailable(_ error: any Error) {
        let opened = state.withLock { state -> Bool in
            guard state.pause == nil, !state.stopping else { return false }
            state.pause = Pause(dependency: dependency, reason: Self.describe(error), since: Date())
            state.pauses += 1
            return true
        }
        guard opened else { return }
        pausedGauge.record(1)
        Counter(label: "worker_pauses_total", dimensions: [("dependency", dependency)]).increment()
        logger.warning(
            "worker paused: \(dependency) unavailable; holding messages in hand without spending their retries",
            metadata: ["dependency": "\(dependency)", "error": "\(Self.describe(error))"])
        Task { await probeUntilAvailable() }
    }

    /// Ends every wait with ``Outcome/stopping`` and refuses new ones (process shutdown).
    package func stop() {
        let waiters = state.withLock { state -> [CheckedContinuation<Outcome, Never>] in
            state.stopping = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: .stopping) }
    }

    private func probeUntilAvailable() async {
        var delay = firstProbeDelay
        while true {
            try? await Task.sleep(for: delay)
            if state.withLock({ $0.stopping }) { return }
            do {
                try await probe()
                break
            } catch {
                logger.debug("\(dependency) still unavailable", metadata: ["error": "\(Self.describe(error))", "retry_in": "\(delay)"])
                delay = min(delay * 2, maxProbeDelay)
            }
        }
        let (pause, waiters) = state.withLock { state -> (Pause?, [CheckedContinuation<Outcome, Never>]) in
            defer {
                state.pause = nil
                state.waiters = []
            }
            return (state.pause, state.waiters)
        }
        pausedGauge.record(0)
        let seconds = pause.map { Date().timeIntervalSince($0.since) } ?? 0
        logger.notice(
            "worker resumed: \(dependency) answers again",
            metadata: [
                "dependency": "\(dependency)", "paused_seconds": "\(String(format: "%.1f", seconds))", "held": "\(waiters.count)",
            ])
        for waiter in waiters { waiter.resume(returning: .available) }
    }

    private static func describe(_ error: any Error) -> String {
        (error as? PostgresError)?.message ?? "\(error)"
    }
}
