import Foundation
import Logging
import Messaging
import Metrics
import Postgres
import ServiceLifecycle
import Settings
import Store

/// Deletes bookkeeping rows that have served their purpose, in the background and in small
/// batches, so no table grows without bound. Business records (orders, payments, refunds,
/// notifications, history) are never touched.
///
/// | table | deleted when | setting (seconds) | default |
/// | --- | --- | --- | --- |
/// | `outbox` | published and older than | `OUTBOX_RETENTION_SECONDS` | 7 days |
/// | `inbox` | processed longer ago than | `INBOX_RETENTION_SECONDS` | 7 days |
/// | `idempotency_keys` | expired longer ago than | `IDEMPOTENCY_RETENTION_SECONDS` | 1 day |
/// | `idempotency_keys` | left `IN_FLIGHT` longer than | `IDEMPOTENCY_ABANDONED_SECONDS` | 10 min |
/// | `login_failures` | older than | `LOGIN_FAILURE_RETENTION_SECONDS` | 1 day |
/// | `refresh_tokens` | expired or revoked longer ago than | `REFRESH_TOKEN_RETENTION_SECONDS` | 7 days |
/// | `saga_redrives` | last re-drive older than | `OUTBOX_RETENTION_SECONDS` | 7 days |
/// | `webhook_deliveries` | delivered longer ago than | `WEBHOOK_DELIVERY_RETENTION_SECONDS` | 30 days |
///
/// The outbox and inbox keep a week: longer than any redelivery, retry delay or dead-letter
/// replay is expected to take, because a message replayed after its inbox row is gone is
/// applied again (the handlers' per-order conditions still keep that harmless). Unpublished
/// and parked outbox rows are never deleted. Refresh tokens that were used but not revoked
/// stay until they expire, so reuse of a stolen token is detected for its whole life.
///
/// Runs in the order worker; replicas take turns through a session-level advisory lock.
package struct Retention: Service {
    /// The retention periods and pacing.
    package struct Settings: Sendable {
        package var outbox: Duration = .seconds(7 * 86_400)
        package var inbox: Duration = .seconds(7 * 86_400)
        package var idempotencyAfterExpiry: Duration = .seconds(86_400)
        package var idempotencyAbandoned: Duration = .seconds(600)
        package var loginFailures: Duration = .seconds(86_400)
        package var refreshTokens: Duration = .seconds(7 * 86_400)
        package var webhookDeliveries: Duration = .seconds(30 * 86_400)
        /// `RETENTION_INTERVAL_SECONDS` (default 60): pause between passes.
        package var interval: Duration = .seconds(60)
        /// `RETENTION_BATCH_SIZE` (default 1000): rows per DELETE, so each holds its locks briefly.
        package var batchSize = 1_000
        /// The defaults.
        package init() {}

        /// Reads the variables in the table above; malformed values are errors.
        package static func read(_ environment: EnvironmentReader) throws -> Settings {
            var settings = Settings()
            if let age = try environment.seconds("OUTBOX_RETENTION_SECONDS") { settings.outbox = age }
            if let age = try environment.seconds("INBOX_RETENTION_SECONDS") { settings.inbox = age }
            if let age = try environment.seconds("IDEMPOTENCY_RETENTION_SECONDS") { settings.idempotencyAfterExpiry = age }
            if let age = try environment.seconds("IDEMPOTENCY_ABANDONED_SECONDS") { settings.idempotencyAbandoned = age }
            if let age = try environment.seconds("LOGIN_FAILURE_RETENTION_SECONDS") { settings.loginFailures = age }
            if let age = try environment.seconds("REFRESH_TOKEN_RETENTION_SECONDS") { settings.refreshTokens = age }
            if let age = try environment.seconds("WEBHOOK_DELIVERY_RETENTION_SECONDS") { settings.webhookDeliveries = age }
            if let interval = try environment.seconds("RETENTION_INTERVAL_SECONDS") { settings.interval = interval }
            if let size = try environment.positive("RETENTION_BATCH_SIZE") { settings.batchSize = size }
            return settings
        }
    }

    let pool: PostgresPool
    let settings: Settings
    let logger: Logger

    /// Creates the service.
    package init(pool: PostgresPool, settings: Settings, logger: Logger) {
        self.pool = pool
        self.settings = settings
        self.logger = logger
    }

    package func run() async throws {
        await runPeriodically(every: settings.interval, task: "retention", logger: logger) { try await pruneOnce() }
    }

    /// Batches of one pass, per table, before the pass yields to the next interval (a large
    /// backlog is worked off over several passes instead of in one long burst).
    static let maxBatchesPerTable = 50

    /// One rule per kind of row: its table (for metrics and logs), its age, and the store
    /// call that deletes one batch of it.
    typealias Rule = (table: String, age: Duration, prune: @Sendable (Duration, Int, PostgresConnection) async throws -> Int)

    static func rules(_ settings: Settings) -> [Rule] {
        let users = UserStore(), idempotency = IdempotencyStore(), saga = SagaStore(), webhooks = WebhookStore()
        return [
            ("outbox", settings.outbox, { try await OutboxStore.prune(olderThan: $0, batch: $1, on: $2) }),
            ("inbox", settings.inbox, { try await InboxStore.prune(olderThan: $0, batch: $1, on: $2) }),
            ("idempotency_keys", settings.idempotencyAfterExpiry, { try await idempotency.pruneExpired(olderThan: $0, batch: $1, on: $2) }),
            ("idempotency_keys", settings.idempotencyAbandoned, { try await idempotency.pruneAbandoned(olderThan: $0, batch: $1, on: $2) }),
            ("login_failures", settings.loginFailures, { try await users.pruneFailures(olderThan: $0, batch: $1, on: $2) }),
            ("refresh_tokens", settings.refreshTokens, { try await users.pruneRefreshTokens(olderThan: $0, batch: $1, on: $2) }),
            ("console_sessions", settings.refreshTokens, { try await ConsoleSessionStore().prune(olderThan: $0, batch: $1, on: $2) }),
            ("saga_redrives", settings.outbox, { try await saga.prune(olderThan: $0, batch: $1, on: $2) }),
            ("webhook_deliveries", settings.webhookDeliveries, { try await webhooks.pruneDelivered(olderThan: $0, batch: $1, on: $2) }),
        ]
    }

    private static let lockKey = "emporium.retention"

    /// One pass over every rule; returns the rows deleted per table (empty when another
    /// replica holds the pass).
    @discardableResult
    package func pruneOnce() async throws -> [String: Int] {
        try await pool.withConnection { db in
            guard try await db.tryAdvisoryLock(Self.lockKey) else { return [:] }
            var deleted: [String: Int] = [:]
            do {
                for rule in Self.rules(settings) {
                    for _ in 0..<Self.maxBatchesPerTable {
                        let count = try await rule.prune(rule.age, settings.batchSize, db)
                        deleted[rule.table, default: 0] += count
                        if count < settings.batchSize { break }
                    }
                }
            } catch {
                try? await db.advisoryUnlock(Self.lockKey)
                throw error
            }
            try await db.advisoryUnlock(Self.lockKey)
            for (table, count) in deleted where count > 0 {
                Counter(label: "retention_deleted_rows_total", dimensions: [("table", table)]).increment(by: count)
                logger.info("retention deleted old rows", metadata: ["table": "\(table)", "rows": "\(count)"])
            }
            return deleted
        }
    }
}
