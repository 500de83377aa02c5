import Logging
import Synchronization

/// Logs a recurring background task's failures once per streak: a warning when it starts
/// failing, debug lines while it keeps failing, and a notice when it works again. A database
/// outage of five minutes is then two lines per task, not three hundred.
package final class FailureStreak: Sendable {
    private let task: String
    private let logger: Logger
    private let failing = Mutex(0)

    /// Creates the streak for `task` (its name in the log lines).
    package init(task: String, logger: Logger) {
        self.task = task
        self.logger = logger
    }

    /// Records a failed pass.
    package func failed(_ error: any Error) {
        let count = failing.withLock { count -> Int in
            count += 1
            return count
        }
        if count == 1 {
            logger.warning("\(task) failed; retrying quietly until it works", metadata: ["error": "\(error)"])
        } else {
            logger.debug("\(task) still failing", metadata: ["error": "\(error)", "failures": "\(count)"])
        }
    }

    /// Records a successful pass.
    package func succeeded() {
        let count = failing.withLock { count -> Int in
            defer { count = 0 }
            return count
        }
        if count > 0 { logger.notice("\(task) works again", metadata: ["failed_passes": "\(count)"]) }
    }
}
