import Foundation
import Logging
import Postgres
import Store
import TestSupport
import Testing

@testable import API

/// An Idempotency-Key claim belongs to the request that made it.
@Suite("Idempotency claims carry a token", .timeLimit(.minutes(1)))
struct IdempotencyClaimTests {
    @Test("a slow request whose abandoned claim was taken over can neither complete nor release its successor's claim")
    func takeoverIsSafe() async throws {
        try await TestEnvironment.withMigratedDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 2)
            let user = UUID()
            try await pool.query(
                "INSERT INTO users (id, email, password_hash, first_name, last_name) VALUES ($1, $2, 'x', 'I', 'T')", [user, "\(user)@example.com"])
            var logger = Logger(label: "test.idempotency")
            logger.logLevel = .critical
            let store = IdempotencyKeys(pool: pool, logger: logger)

            guard case .acquired(let slow) = try await store.claim(userId: user, key: "k-1", requestHash: "h") else {
                Issue.record("the first claim was not acquired")
                return
            }
            // The same key again while the first runs: in flight.
            guard case .inFlight = try await store.claim(userId: user, key: "k-1", requestHash: "h") else {
                Issue.record("a concurrent claim was not refused")
                return
            }
            // The first request is presumed crashed once its claim is old; a retry takes over.
            try await pool.query("UPDATE idempotency_keys SET created_at = now() - interval '10 minutes' WHERE user_id = $1", [user])
            guard case .acquired(let successor) = try await store.claim(userId: user, key: "k-1", requestHash: "h") else {
                Issue.record("the abandoned claim was not taken over")
                return
            }
            #expect(successor.value != slow.value)
            // The slow original wakes up: its completion fails (its transaction rolls back)…
            await #expect(throws: Store.IdempotencyStore.ClaimLost.self) {
                try await pool.withTransaction { db in _ = try await store.complete(slow, status: 201, body: Data("{\"order\":\"slow\"}".utf8), on: db) }
            }
            // …and its release leaves the successor's claim alone.
            await store.release(slow)
            #expect(
                try await pool.query("SELECT count(*) AS n FROM idempotency_keys WHERE user_id = $1 AND status = 'IN_FLIGHT'", [user])[0].decode(Int.self, "n")
                    == 1)
            let stored = try await pool.withTransaction { db in
                try await store.complete(successor, status: 201, body: Data("{\"order\":\"successor\"}".utf8), on: db)
            }
            #expect(stored.contains("successor"))
            guard case .replay(let status, let body) = try await store.claim(userId: user, key: "k-1", requestHash: "h") else {
                Issue.record("the completed key was not replayed")
                return
            }
            #expect(status == 201)
            #expect(body.contains("successor"))
            await pool.close()
        }
    }
}
