import AMQP
import Domain
import Foundation
import Logging
import Messaging
import Payments
import Postgres
import Settings

/// What a worker process reads from its environment.
package struct WorkerConfiguration: Sendable {
    /// What every process shares (``ProcessSettings``). A worker's pool is 8 sessions; it
    /// waits up to 10 s for one and 15 s for a statement (`DB_QUERY_TIMEOUT_MS`): no client
    /// is waiting, and a frozen database pauses the worker either way.
    package var shared: ProcessSettings
    /// The worker's defaults for the shared settings.
    static let sharedDefaults = ProcessSettings.Defaults(poolSize: 8, acquireTimeout: .seconds(10), queryTimeout: .seconds(15))

    package var logLevel: Logger.Level {
        get { shared.logLevel }
        set { shared.logLevel = newValue }
    }
    package var postgres: PostgresConfiguration {
        get { shared.postgres }
        set { shared.postgres = newValue }
    }
    package var poolSize: Int {
        get { shared.poolSize }
        set { shared.poolSize = newValue }
    }
    package var amqp: AMQPConfiguration {
        get { shared.amqp }
        set { shared.amqp = newValue }
    }
    package var names: MessagingNames {
        get { shared.names }
        set { shared.names = newValue }
    }
    package var policy: QueuePolicy {
        get { shared.policy }
        set { shared.policy = newValue }
    }

    /// `WORKER_PREFETCH` (default twice the batch size): most messages unacknowledged per
    /// worker process, so the next batch is waiting while one commits.
    package var prefetch: UInt16?
    /// `WORKER_BATCH_SIZE` (default 32): most messages a worker applies in one transaction.
    /// Batches form from messages already waiting (and, for messages nobody waits on, those
    /// that arrive within `batchWait`); 1 turns batching off. The payment
    /// worker batches charge requests only (charged concurrently under their idempotency
    /// keys; everything else calls the provider one message at a time); the
    /// notification worker, with a mail relay (`SMTP_HOST`), batches only the events merchants
    /// alone hear of (each mail has a transaction of its own), and without one batches all.
    package var batchSize = 32
    /// `WORKER_CONCURRENCY` (default 2 for the stock and order workers, 6 for the payment and
    /// notification workers, whose messages wait on the provider or the mail relay): batches
    /// (or single messages) in flight at once per process.
    package var concurrency: Int?
    /// `WORKER_BATCH_WAIT_MS` (default 100; 0: never wait): how long a worker holds a batch
    /// shorter than `WORKER_BATCH_SIZE` for more messages, counted from the oldest one's
    /// arrival, when nobody waits on any of them (``EventHandler/mayWait(_:)``): the
    /// notification worker's (except mails, which go one per transaction anyway) and the
    /// stock worker's commits of confirmed orders' reservations. Below saturation messages
    /// come one at a time, and each alone would cost a transaction, a commit and an ack.
    /// Messages on the saga's path never wait: each step would delay the order.
    package var batchWait: Duration = .milliseconds(100)

    /// The prefetch in effect: `WORKER_PREFETCH`, or twice the batch size.
    package var effectivePrefetch: UInt16 { prefetch ?? UInt16(min(Int(UInt16.max), 2 * batchSize)) }

    /// The batches in flight for `role`: `WORKER_CONCURRENCY`, or the role's default.
    package func effectiveConcurrency(for role: WorkerRole) -> Int { concurrency ?? ([.payment, .notification].contains(role) ? 6 : 2) }
    /// `PAYMENT_PROVIDER_LATENCY_MS` (default 0): the fake provider's delay per call.
    package var providerLatency: Duration = .zero
    /// `WORKER_DRAIN_TIMEOUT_MS` (default 10000): how long SIGTERM waits for in-flight messages.
    package var drainTimeout: Duration = .seconds(10)
    /// `PAYMENT_TIMEOUT_SECONDS` (default 900): card orders awaiting payment longer are cancelled.
    package var paymentTimeout: Duration = .seconds(900)
    /// `MANUAL_PAYMENT_TIMEOUT_SECONDS` (default 900): orders placed with `manual` payment (the
    /// customer confirms the payment later) hold their stock at most this long unpaid.
    package var manualPaymentTimeout: Duration = .seconds(900)
    /// `SWEEPER_INTERVAL_MS` (default 10000): how often the order worker looks for them.
    package var sweeperInterval: Duration = .seconds(10)
    /// The payment provider (`PAYMENT_PROVIDER`, `PAYMENT_CAPTURE`, `STRIPE_*`, see ``PaymentSettings``).
    package var payments = PaymentSettings()
    /// The payment reconciliation sweep (`PAYMENT_RECONCILE_INTERVAL_SECONDS`,
    /// `PAYMENT_RECONCILE_LOOKBACK_HOURS`); it runs in the payment worker.
    package var paymentReconcile = PaymentReconcileSweep.Settings()
    /// Merchant webhook deliveries (`WEBHOOK_*`, see ``WebhookDispatcher/Settings``); they are
    /// sent by the notification worker.
    package var webhooks = WebhookDispatcher.Settings()
    /// `PAYMENT_DRILL_CRASH_AFTER_CHARGE_CENTS`: a drill (see ``CrashAfterChargeDrill``).
    package var crashAfterChargeCents: Int?
    /// `FAKE_PROVIDER_FAULTS` (default false): enables the fake provider's crash token.
    package var providerFaults = false
    /// `SMTP_HOST`, `SMTP_PORT` (default 25): the notification worker sends email through
    /// this relay; unset, it only records messages in the `notifications` table.
    package var smtp: (host: String, port: Int)?
    /// `MAIL_FROM` (default orders@emporium.local): the sender of notification emails.
    package var mailFrom = "orders@emporium.local"
    /// `HEALTH_PORT`: serve `GET /health` and `GET /ready` on this port (unset: no server).
    package var healthPort: Int?
    /// `HEALTH_HOST` (default 127.0.0.1; 0.0.0.0 in containers).
    package var healthHost = "127.0.0.1"
    /// The saga reconciler's settings (`SAGA_STALL_SECONDS`, `SAGA_SWEEP_INTERVAL_MS`,
    /// `SAGA_MAX_REDRIVES`, `SAGA_LOOKBACK_SECONDS`); it runs in the order worker.
    package var saga = SagaReconciler.Settings()
    /// Retention of bookkeeping rows (`OUTBOX_RETENTION_SECONDS` and friends, see
    /// ``Retention``); it runs in the order worker.
    package var retention = Retention.Settings()

    /// Creates a configuration from its parts.
    package init(postgres: PostgresConfiguration, amqp: AMQPConfiguration, names: MessagingNames) {
        self.shared = ProcessSettings(postgres: postgres, amqp: amqp, defaults: Self.sharedDefaults)
        self.shared.names = names
    }

    private init(shared: ProcessSettings) { self.shared = shared }

    /// Reads the variables above; a malformed value is an error, not a silent default.
    package static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> WorkerConfiguration {
        let env = EnvironmentReader(environment)
        var config = WorkerConfiguration(shared: try ProcessSettings.read(env, defaults: sharedDefaults))
        if let prefetch = try env.int("WORKER_PREFETCH", in: 1...Int(UInt16.max)) { config.prefetch = UInt16(prefetch) }
        if let size = try env.int("WORKER_BATCH_SIZE", in: 1...1000) { config.batchSize = size }
        if let concurrency = try env.int("WORKER_CONCURRENCY", in: 1...256) { config.concurrency = concurrency }
        if let ms = try env.int("WORKER_BATCH_WAIT_MS", in: 0...1_000, unit: "milliseconds") { config.batchWait = .milliseconds(ms) }
        if let ms = try env.nonNegative("PAYMENT_PROVIDER_LATENCY_MS", unit: "milliseconds") { config.providerLatency = .milliseconds(ms) }
        if let timeout = try env.milliseconds("WORKER_DRAIN_TIMEOUT_MS") { config.drainTimeout = timeout }
        if let timeout = try env.seconds("PAYMENT_TIMEOUT_SECONDS") { config.paymentTimeout = timeout }
        if let timeout = try env.seconds("MANUAL_PAYMENT_TIMEOUT_SECONDS") { config.manualPaymentTimeout = timeout }
        if let interval = try env.milliseconds("SWEEPER_INTERVAL_MS") { config.sweeperInterval = interval }
        config.providerFaults = env.flag("FAKE_PROVIDER_FAULTS")
        config.payments = try PaymentSettings.read(env)
        if let ms = try env.milliseconds("WEBHOOK_TIMEOUT_MS") { config.webhooks.sender.timeout = ms }
        config.webhooks.sender.allowPrivateTargets = env.flag("WEBHOOK_ALLOW_PRIVATE_TARGETS")
        if let n = try env.int("WEBHOOK_MAX_ATTEMPTS", in: 1...50) { config.webhooks.maxAttempts = n }
        if let ms = try env.milliseconds("WEBHOOK_BACKOFF_BASE_MS") { config.webhooks.backoffBase = ms }
        if let cap = try env.seconds("WEBHOOK_BACKOFF_MAX_SECONDS") { config.webhooks.backoffCap = cap }
        if let after = try env.seconds("WEBHOOK_DISABLE_AFTER_SECONDS") { config.webhooks.disableAfter = after }
        if let ms = try env.milliseconds("WEBHOOK_POLL_INTERVAL_MS") { config.webhooks.pollInterval = ms }
        config.webhooks.secretSeal = try env.webhookSecretSeal()
        config.crashAfterChargeCents = try env.positive("PAYMENT_DRILL_CRASH_AFTER_CHARGE_CENTS", unit: "cents")
        if let interval = try env.seconds("PAYMENT_RECONCILE_INTERVAL_SECONDS") { config.paymentReconcile.interval = interval }
        if let hours = try env.positive("PAYMENT_RECONCILE_LOOKBACK_HOURS", unit: "hours") { config.paymentReconcile.lookback = .seconds(hours * 3_600) }
        if let port = try env.port("HEALTH_PORT") { config.healthPort = port }
        if let host = env.string("HEALTH_HOST") { config.healthHost = host }
        if let host = env.string("SMTP_HOST") { config.smtp = (host, try env.port("SMTP_PORT") ?? 25) }
        if let from = env.string("MAIL_FROM") {
            guard SMTPClient.isSafeAddress(from) else { throw ConfigurationError("MAIL_FROM must be a bare email address") }
            config.mailFrom = from
        }
        if let stall = try env.seconds("SAGA_STALL_SECONDS") { config.saga.stall = stall }
        if let interval = try env.milliseconds("SAGA_SWEEP_INTERVAL_MS") { config.saga.interval = interval }
        if let redrives = try env.positive("SAGA_MAX_REDRIVES") { config.saga.maxRedrives = redrives }
        if let lookback = try env.seconds("SAGA_LOOKBACK_SECONDS") { config.saga.lookback = lookback }
        config.retention = try Retention.Settings.read(env)
        return config
    }
}
