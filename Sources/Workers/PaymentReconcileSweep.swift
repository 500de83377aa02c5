import Foundation
import Logging
import Messaging
import Payments
import ServiceLifecycle

/// Runs ``PaymentReconciler`` in the payment worker every `interval`, over the charges of the
/// last `lookback`, and publishes its repairs. The first pass waits one interval, so a worker
/// that restarts in a loop does not list the provider's charges on every start. Repairs are
/// idempotent (the payment worker applies the provider's state), so replicas that sweep at
/// the same time only repeat each other's work.
package struct PaymentReconcileSweep: Service {
    /// What the sweep reads from its environment.
    package struct Settings: Sendable {
        /// `PAYMENT_RECONCILE_INTERVAL_SECONDS` (default 900): how often to compare.
        package var interval: Duration = .seconds(900)
        /// `PAYMENT_RECONCILE_LOOKBACK_HOURS` (default 24): how far back charges are compared.
        package var lookback: Duration = .seconds(24 * 3_600)
        /// The defaults.
        package init() {}
    }

    let reconciler: PaymentReconciler
    let outbox: OutboxPublisher
    let settings: Settings
    let logger: Logger

    /// Creates the sweep.
    package init(reconciler: PaymentReconciler, outbox: OutboxPublisher, settings: Settings, logger: Logger) {
        self.reconciler = reconciler
        self.outbox = outbox
        self.settings = settings
        self.logger = logger
    }

    package func run() async throws {
        await sleepUnlessShuttingDown(for: settings.interval)
        await runPeriodically(every: settings.interval, task: "payment reconciliation", logger: logger) {
            let report = try await reconciler.run(since: Date().addingTimeInterval(-settings.lookback.secondsWithFraction), dryRun: false)
            if !report.events.isEmpty { outbox.publishSoon(report.events) }
        }
    }
}
