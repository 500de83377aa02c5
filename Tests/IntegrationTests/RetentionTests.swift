import Foundation
import Logging
import Postgres
import TestSupport
import Testing
import Workers

/// Bookkeeping rows are deleted once their retention has passed; recent ones, unpublished
/// and parked outbox rows, and refresh tokens still able to reveal a reuse are kept.
@Suite("Retention of bookkeeping rows", .timeLimit(.minutes(2)))
struct RetentionTests {
    @Test("with short retentions the old rows are deleted and the recent ones kept")
    func oldRowsGoRecentStay() async throws {
        try await TestEnvironment.withMigratedDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 2)
            let user = UUID()
            try await pool.query(
                "INSERT INTO users (id, email, password_hash, first_name, last_name) VALUES ($1, $2, 'x', 'R', 'T')", [user, "\(user)@example.com"])
            // For each table: rows on both sides of a one-hour retention.
            for (age, tag) in [("2 hours", "old"), ("1 minute", "new")] {
                try await pool.query(
                    """
                    INSERT INTO outbox (id, event_type, exchange, routing_key, payload, created_at, published_at)
                    VALUES (gen_random_uuid(), $1, 'x', 'k', '{}', now() - $2::interval, now() - $2::interval)
                    """, ["published-\(tag)", age])
                try await pool.query(
                    "INSERT INTO outbox (id, event_type, exchange, routing_key, payload, created_at) VALUES (gen_random_uuid(), $1, 'x', 'k', '{}', now() - $2::interval)",
                    ["unpublished-\(tag)", age])
                try await pool.query(
                    "INSERT INTO outbox (id, event_type, exchange, routing_key, payload, created_at, parked_at) VALUES (gen_random_uuid(), $1, 'x', 'k', '{}', now() - $2::interval, now())",
                    ["parked-\(tag)", age])
                try await pool.query("INSERT INTO inbox (consumer, message_id, processed_at) VALUES ($1, gen_random_uuid(), now() - $2::interval)", [tag, age])
                try await pool.query(
                    """
                    INSERT INTO idempotency_keys (user_id, key, request_hash, status, created_at, expires_at)
                    VALUES ($1, $2, 'h', 'COMPLETED', now() - $3::interval, now() - $3::interval)
                    """, [user, "expired-\(tag)", age])
                try await pool.query(
                    "INSERT INTO idempotency_keys (user_id, key, request_hash, status, created_at, expires_at) VALUES ($1, $2, 'h', 'IN_FLIGHT', now() - $3::interval, now() + interval '1 day')",
                    [user, "inflight-\(tag)", age])
                try await pool.query(
                    "INSERT INTO login_failures (account, client_address, failed_at) VALUES ($1, '127.0.0.1', now() - $2::interval)", [tag, age])
                try await pool.query(
                    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) VALUES (gen_random_uuid(), $1, gen_random_uuid(), $2, now() - $3::interval)",
                    [user, "expired-\(tag)", age])
                try await pool.query(
                    """
                    INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, revoked_at)
                    VALUES (gen_random_uuid(), $1, gen_random_uuid(), $2, now() + interval '20 days', now() - $3::interval)
                    """, [user, "revoked-\(tag)", age])
            }
            // A used (rotated) but live token: kept however old, so its reuse is still caught.
            try await pool.query(
                """
                INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, used_at, created_at)
                VALUES (gen_random_uuid(), $1, gen_random_uuid(), 'used-live', now() + interval '20 days', now() - interval '25 days', now() - interval '25 days')
                """, [user])

            var settings = Retention.Settings()
            for keyPath in [\Retention.Settings.outbox, \.inbox, \.idempotencyAfterExpiry, \.idempotencyAbandoned, \.loginFailures, \.refreshTokens] {
                settings[keyPath: keyPath] = .seconds(3_600)
            }
            settings.batchSize = 1  // several batches per table, as a large backlog would take
            var logger = Logger(label: "test.retention")
            logger.logLevel = .critical
            let deleted = try await Retention(pool: pool, settings: settings, logger: logger).pruneOnce()
            #expect(deleted["outbox"] == 1)
            #expect(deleted["inbox"] == 1)
            #expect(deleted["idempotency_keys"] == 2)
            #expect(deleted["login_failures"] == 1)
            #expect(deleted["refresh_tokens"] == 2)

            func names(_ sql: String) async throws -> Set<String> {
                Set(try await pool.query(sql).map { try $0.decode(String.self, at: 0) })
            }
            #expect(try await names("SELECT event_type FROM outbox") == ["published-new", "unpublished-old", "unpublished-new", "parked-old", "parked-new"])
            #expect(try await names("SELECT consumer FROM inbox") == ["new"])
            #expect(try await names("SELECT key FROM idempotency_keys") == ["expired-new", "inflight-new"])
            #expect(try await names("SELECT account FROM login_failures") == ["new"])
            #expect(try await names("SELECT token_hash FROM refresh_tokens") == ["expired-new", "revoked-new", "used-live"])
            // A second pass finds nothing more.
            #expect(try await Retention(pool: pool, settings: settings, logger: logger).pruneOnce().values.reduce(0, +) == 0)
            await pool.close()
        }
    }
}
