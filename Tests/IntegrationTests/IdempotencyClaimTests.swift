import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// An Idempotency-Key is decided inside the transaction that places the order.
@Suite("Idempotency keys are held by the placing transaction", .timeLimit(.minutes(1)))
struct IdempotencyClaimTests {
    private func user(_ pool: PostgresPool) async throws -> UUID {
        let user = UUID()
        try await pool.query(
            "INSERT INTO users (id, email, password_hash, first_name, last_name) VALUES ($1, $2, 'x', 'I', 'T')", [user, "\(user)@example.com"])
        return user
    }

    @Test(
        "while one transaction holds a key another is told it is in flight; a rollback leaves the key free, a commit makes it a replay, another body a mismatch"
    )
    func heldByTransaction() async throws {
        try await TestEnvironment.withMigratedDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 3)
            let user = try await user(pool)
            let store = IdempotencyStore()
            func lookUp(_ hash: String = "h") async throws -> IdempotencyStore.Lookup {
                try await pool.withTransaction { db in try await store.lookUp(userId: user, key: "k-1", requestHash: hash, on: db) }
            }

            // A slow first request: it holds the key until told to fail.
            let (holding, held) = AsyncStream.makeStream(of: IdempotencyStore.Lookup.self)
            let (released, release) = AsyncStream.makeStream(of: Void.self)
            struct Abort: Error {}
            let slow = Task {
                try await pool.withTransaction { db in
                    held.yield(try await store.lookUp(userId: user, key: "k-1", requestHash: "h", on: db))
                    for await _ in released { break }
                    throw Abort()
                }
            }
            var firstLookup: IdempotencyStore.Lookup?
            for await lookup in holding {
                firstLookup = lookup
                break
            }
            guard case .fresh = firstLookup else {
                Issue.record("the first request did not find the key fresh: \(String(describing: firstLookup))")
                return
            }
            guard case .inFlight = try await lookUp() else {
                Issue.record("a concurrent request was not told the key is in flight")
                return
            }
            // The first request fails: its transaction rolls back and the key is free again.
            release.yield()
            await #expect(throws: Abort.self) { try await slow.value }
            guard case .fresh = try await lookUp() else {
                Issue.record("a rolled-back request left its key taken")
                return
            }
            #expect(try await pool.query("SELECT count(*) AS n FROM idempotency_keys WHERE user_id = $1", [user])[0].decode(Int.self, "n") == 0)

            // A request that completes stores its response with the key, in its transaction.
            let stored = try await pool.withTransaction { db -> String in
                guard case .fresh = try await store.lookUp(userId: user, key: "k-1", requestHash: "h", on: db) else { throw Abort() }
                return try await store.record(userId: user, key: "k-1", requestHash: "h", status: 201, body: Data("{\"order\": \"first\"}".utf8), on: db)
            }
            guard case .replay(let status, let body) = try await lookUp() else {
                Issue.record("the completed key was not replayed")
                return
            }
            #expect(status == 201)
            #expect(body == stored)
            #expect(body.contains("first"))
            guard case .mismatch = try await lookUp("another body") else {
                Issue.record("another body with the same key was not refused")
                return
            }
            await pool.close()
        }
    }

    @Test("an IN_FLIGHT row left by an earlier version is in flight while young and used afresh once abandoned")
    func earlierVersionsClaims() async throws {
        try await TestEnvironment.withMigratedDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 2)
            let user = try await user(pool)
            let store = IdempotencyStore()
            try await pool.query(
                "INSERT INTO idempotency_keys (user_id, key, request_hash, status, expires_at) VALUES ($1, 'old', 'h', 'IN_FLIGHT', now() + interval '1 day')",
                [user])
            func lookUp() async throws -> IdempotencyStore.Lookup {
                try await pool.withTransaction { db in try await store.lookUp(userId: user, key: "old", requestHash: "h", on: db) }
            }
            guard case .inFlight = try await lookUp() else {
                Issue.record("a young IN_FLIGHT row was not in flight")
                return
            }
            try await pool.query("UPDATE idempotency_keys SET created_at = now() - interval '10 minutes' WHERE user_id = $1", [user])
            guard case .fresh = try await lookUp() else {
                Issue.record("an abandoned IN_FLIGHT row was not used afresh")
                return
            }
            #expect(try await pool.query("SELECT count(*) AS n FROM idempotency_keys WHERE user_id = $1", [user])[0].decode(Int.self, "n") == 0)
            await pool.close()
        }
    }
}
