import Foundation
import Logging
import Postgres
import Synchronization

/// `Idempotency-Key` bookkeeping for `POST /api/v1/orders`, scoped per user and kept 24 h.
///
/// The key is claimed (IN_FLIGHT) in its own short transaction, so a concurrent request
/// with the same key sees it at once; the response is stored in the same transaction as
/// the order, so "order exists" and "response stored" can never disagree.
///
/// Each claim carries a token, and only the request holding the token completes or
/// releases the key. A claim older than ``abandonedAfterSeconds`` is taken to belong to a
/// crashed request and may be taken over with a new token; if the original was only slow,
/// its completion then finds no claim of its own and its transaction (with the order)
/// rolls back, so the key never ends with two orders.
struct IdempotencyStore: Sendable {
    /// A claim held by one request.
    struct Token: Sendable, Hashable {
        let userId: UUID
        let key: String
        let value: UUID
    }

    enum Claim: Sendable {
        /// This request owns the key and must complete or release it.
        case acquired(Token)
        /// Finished before: answer with the stored response.
        case replay(status: Int, body: String)
        /// The key was used with another request body.
        case mismatch
        /// The first request with this key is still running.
        case inFlight
    }

    let pool: PostgresPool
    let releases: PendingReleases
    /// An IN_FLIGHT claim older than this is taken to belong to a crashed request.
    static let abandonedAfterSeconds = 60

    init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.releases = PendingReleases(pool: pool, logger: logger)
    }

    func claim(userId: UUID, key: String, requestHash: String) async throws -> Claim {
        for _ in 0..<2 {
            let token = Token(userId: userId, key: key, value: UUID())
            let inserted = try await pool.query(
                """
                INSERT INTO idempotency_keys (user_id, key, request_hash, status, claim_token, expires_at)
                VALUES ($1, $2, $3, 'IN_FLIGHT', $4, now() + interval '24 hours') ON CONFLICT DO NOTHING
                """, [userId, key, requestHash, token.value])
            if inserted.affectedRows == 1 { return .acquired(token) }
            guard let row = try await pool.query(
                """
                SELECT request_hash, status, response_status, response_body::text AS body, expires_at < now() AS expired,
                       created_at < now() - make_interval(secs => $3) AS abandoned
                FROM idempotency_keys WHERE user_id = $1 AND key = $2
                """, [userId, key, Self.abandonedAfterSeconds]).first
            else { continue }  // deleted meanwhile: try the insert again
            if try row.decode(Bool.self, "expired") {
                try await pool.query("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND expires_at < now()", [userId, key])
                continue
            }
            guard try row.decode(String.self, "request_hash") == requestHash else { return .mismatch }
            if try row.decode(String.self, "status") == "COMPLETED" {
                return .replay(status: try row.decode(Int.self, "response_status"), body: try row.decode(String.self, "body"))
            }
            if try row.decode(Bool.self, "abandoned") {
                // A new token: whatever the abandoned request still does can no longer touch the key.
                let taken = try await pool.query(
                    """
                    UPDATE idempotency_keys SET created_at = now(), claim_token = $4 WHERE user_id = $1 AND key = $2 AND status = 'IN_FLIGHT'
                      AND created_at < now() - make_interval(secs => $3)
                    """, [userId, key, Self.abandonedAfterSeconds, token.value])
                if taken.affectedRows == 1 { return .acquired(token) }
            }
            return .inFlight
        }
        return .inFlight
    }

    /// Stores the response in the caller's transaction; returns the body as stored (jsonb
    /// normalises it), so the first answer and every replay are byte-identical. Throws when
    /// the claim is no longer this request's (taken over after it was presumed abandoned),
    /// which rolls the caller's transaction back.
    func complete(_ token: Token, status: Int, body: Data, on db: PostgresConnection) async throws -> String {
        let rows = try await db.query(
            """
            UPDATE idempotency_keys SET status = 'COMPLETED', response_status = $4, response_body = $5
            WHERE user_id = $1 AND key = $2 AND claim_token = $3 AND status = 'IN_FLIGHT' RETURNING response_body::text AS body
            """, [token.userId, token.key, token.value, status, PostgresJSON(data: body)])
        guard let row = rows.first else { throw ClaimLost() }
        return try row.decode(String.self, "body")
    }

    /// Gives the key back after a failed attempt, so the client may retry with it. If the
    /// database is unreachable right now, the release waits in ``PendingReleases`` and is
    /// retried until it goes through, however long the outage lasts.
    func release(_ token: Token) async {
        if (try? await PendingReleases.release(token, on: pool)) != nil { return }
        releases.add(token)
    }

    /// The claim was taken over by a later request with the same key: this request lost it.
    struct ClaimLost: Error, CustomStringConvertible {
        var description: String { "the Idempotency-Key claim was taken over by a later request" }
    }
}

/// Releases of idempotency claims that failed because the database was unavailable, retried
/// in the background until they go through. Bounded: past `limit`, further ones are left to
/// retention, which deletes claims left IN_FLIGHT (`IDEMPOTENCY_ABANDONED_SECONDS`).
final class PendingReleases: Sendable {
    private let pending = Mutex<Set<IdempotencyStore.Token>>([])
    private let worker = Mutex<Task<Void, Never>?>(nil)
    private let pool: PostgresPool
    private let logger: Logger
    let limit = 10_000

    init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    /// Deletes the claim if it is still this token's and still in flight.
    static func release(_ token: IdempotencyStore.Token, on pool: PostgresPool) async throws {
        try await pool.query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND claim_token = $3 AND status = 'IN_FLIGHT'",
            [token.userId, token.key, token.value])
    }

    func add(_ token: IdempotencyStore.Token) {
        let accepted = pending.withLock { pending -> Bool in
            guard pending.count < limit else { return false }
            pending.insert(token)
            return true
        }
        if !accepted { logger.warning("too many idempotency keys waiting for release; retention will clear the rest") }
        worker.withLock { worker in
            guard worker == nil else { return }
            worker = Task { [weak self] in await self?.drain() }
        }
    }

    private func drain() async {
        var delay: Duration = .milliseconds(500)
        while true {
            try? await Task.sleep(for: delay)
            let batch = pending.withLock { Array($0) }
            var released = 0
            for token in batch {
                guard (try? await Self.release(token, on: pool)) != nil else { break }
                _ = pending.withLock { $0.remove(token) }
                released += 1
            }
            let done = worker.withLock { worker -> Bool in
                let empty = pending.withLock { $0.isEmpty }
                if empty { worker = nil }
                return empty
            }
            if done { return }
            delay = released > 0 ? .milliseconds(500) : min(delay * 2, .seconds(5))
        }
    }
}
