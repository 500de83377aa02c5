import Logging
import ServiceLifecycle

/// Sleeps for `duration`, or less when graceful shutdown begins: a background loop that waits
/// a minute between passes must not hold up a SIGTERM for that minute.
package func sleepUnlessShuttingDown(for duration: Duration) async {
    _ = try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
}

/// The loop of every background pass (the relay's poll, the sweepers, the reconciler,
/// retention): runs `pass` every `interval` until graceful shutdown or cancellation, logging
/// a failing streak once when it starts and once when it ends (see ``FailureStreak``).
package func runPeriodically(every interval: Duration, task: String, logger: Logger, _ pass: () async throws -> Void) async {
    let streak = FailureStreak(task: task, logger: logger)
    while !Task.isShuttingDownGracefully && !Task.isCancelled {
        do {
            try await pass()
            streak.succeeded()
        } catch {
            streak.failed(error)
        }
        await sleepUnlessShuttingDown(for: interval)
    }
}
