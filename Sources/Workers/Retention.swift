import Foundation
import Logging
import Messaging
import Metrics
import Postgres
import ServiceLifecycle

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
///
/// The outbox and inbox keep a week: longer than any redelivery, retry delay or dead-letter
/// replay is expected to take, because a message replayed after its inbox row is gone is
/// applied again (the handlers' per-order conditions still keep that harmless). Unpublished
/// and parked outbox rows are never deleted. Refresh tokens that were used but not revoked
/// stay until they expire, so reuse of a stolen token is detected for its whole life.
///
/// Runs in the order worker; replicas take turns through a session-level advisory lock.
public struct Retention: Service {
    /// The retention periods and pacing.
    public struct Settings: Sendable {
        public var outbox: Duration = .seconds(7 * 86_400)
        public var inbox: Duration = .seconds(7 * 86_400)
        public var idempotencyAfterExpiry: Duration = .seconds(86_400)
        public var idempotencyAbandoned: Duration = .seconds(600)
        public var loginFailures: Duration = .seconds(86_400)
        public var refreshTokens: Duration = .seconds(7 * 86_400)
        /// `RETENTION_INTERVAL_SECONDS` (default 60): pause between passes.
        public var interval: Duration = .seconds(60)
        /// `RETENTION_BATCH_SIZE` (default 1000): rows per DELETE, so each holds its locks briefly.
        public var batchSize = 1_000
        /// The defaults.
        public init() {}

        /// Reads the variables in the table above; malformed values are errors.
        public static func fromEnvironment(_ environment: [String: String]) throws -> Settings {
            var settings = Settings()
            func seconds(_ name: String, _ apply: (Duration) -> Void) throws {
                guard let value = environment[name] else { return }
                guard let number = Int(value), number > 0 else { throw WorkerConfigurationError("\(name) must be a positive number of seconds") }
                apply(.seconds(number))
            }
            try seconds("OUTBOX_RETENTION_SECONDS") { settings.outbox = $0 }
            try seconds("INBOX_RETENTION_SECONDS") { settings.inbox = $0 }
            try seconds("IDEMPOTENCY_RETENTION_SECONDS") { settings.idempotencyAfterExpiry = $0 }
            try seconds("IDEMPOTENCY_ABANDONED_SECONDS") { settings.idempotencyAbandoned = $0 }
            try seconds("LOGIN_FAILURE_RETENTION_SECONDS") { settings.loginFailures = $0 }
            try seconds("REFRESH_TOKEN_RETENTION_SECONDS") { settings.refreshTokens = $0 }
            try seconds("RETENTION_INTERVAL_SECONDS") { settings.interval = $0 }
            if let value = environment["RETENTION_BATCH_SIZE"] {
                guard let size = Int(value), size > 0 else { throw WorkerConfigurationError("RETENTION_BATCH_SIZE must be a positive number") }
                settings.batchSize = size
            }
            return settings
        }
    }

    let pool: PostgresPool
    let settings: Settings
    let logger: Logger

    /// Creates the service.
    public init(pool: PostgresPool, settings: Settings, logger: Logger) {
        self.pool = pool
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        await runPeriodically(every: settings.interval, task: "retention", logger: logger) { try await pruneOnce() }
    }

    /// Batches of one pass, per table, before the pass yields to the next interval (a large
    /// backlog is worked off over several passes instead of in one long burst).
    static let maxBatchesPerTable = 50

    /// One DELETE per rule: `$1` the age in seconds, `$2` the batch size.
    static func rules(_ settings: Settings) -> [(table: String, sql: String, age: Duration)] { [
        ("outbox", """
            DELETE FROM outbox WHERE id IN (
              SELECT id FROM outbox WHERE created_at < now() - make_interval(secs => $1) AND published_at IS NOT NULL LIMIT $2)
            """, settings.outbox),
        ("inbox", """
            DELETE FROM inbox WHERE (consumer, message_id) IN (
              SELECT consumer, message_id FROM inbox WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2)
            """, settings.inbox),
        ("idempotency_keys", """
            DELETE FROM idempotency_keys WHERE (user_id, key) IN (
              SELECT user_id, key FROM idempotency_keys WHERE expires_at < now() - make_interval(secs => $1) LIMIT $2)
            """, settings.idempotencyAfterExpiry),
        ("idempotency_keys", """
            DELETE FROM idempotency_keys WHERE (user_id, key) IN (
              SELECT user_id, key FROM idempotency_keys WHERE status = 'IN_FLIGHT' AND created_at < now() - make_interval(secs => $1) LIMIT $2)
            """, settings.idempotencyAbandoned),
        ("login_failures", """
            DELETE FROM login_failures WHERE id IN (
              SELECT id FROM login_failures WHERE failed_at < now() - make_interval(secs => $1) LIMIT $2)
            """, settings.loginFailures),
        ("refresh_tokens", """
            DELETE FROM refresh_tokens WHERE id IN (
              SELECT id FROM refresh_tokens WHERE expires_at < now() - make_interval(secs => $1)
              UNION ALL
              SELECT id FROM refresh_tokens WHERE revoked_at < now() - make_interval(secs => $1) LIMIT $2)
            """, settings.refreshTokens),
        ("saga_redrives", """
            DELETE FROM saga_redrives WHERE order_id IN (
              SELECT order_id FROM saga_redrives WHERE last_redriven_at < now() - make_interval(secs => $1) LIMIT $2)
            """, settings.outbox),
    ] }

    private static let lockKey = "emporium.retention"

    /// One pass over every rule; returns the rows deleted per table (empty when another
    /// replica holds the pass).
    @discardableResult
    public func pruneOnce() async throws -> [String: Int] {
        try await pool.withConnection { db in
            guard try await db.query("SELECT pg_try_advisory_lock(hashtext($1)) AS locked", [Self.lockKey])[0].decode(Bool.self, "locked") else {
                return [:]
            }
            var deleted: [String: Int] = [:]
            do {
                for rule in Self.rules(settings) {
                    let age = rule.age
                    let ageSeconds = Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18
                    for _ in 0..<Self.maxBatchesPerTable {
                        let count = try await db.query(rule.sql, [ageSeconds, settings.batchSize]).affectedRows
                        deleted[rule.table, default: 0] += count
                        if count < settings.batchSize { break }
                    }
                }
            } catch {
                _ = try? await db.query("SELECT pg_advisory_unlock(hashtext($1))", [Self.lockKey])
                throw error
            }
            try await db.query("SELECT pg_advisory_unlock(hashtext($1))", [Self.lockKey])
            for (table, count) in deleted where count > 0 {
                Counter(label: "retention_deleted_rows_total", dimensions: [("table", table)]).increment(by: count)
                logger.info("retention deleted old rows", metadata: ["table": "\(table)", "rows": "\(count)"])
            }
            return deleted
        }
    }
}
