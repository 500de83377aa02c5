import Foundation
import Postgres
import Units

/// `Idempotency-Key` claims: `idempotency_keys`, scoped per user, kept 24 hours.
///
/// A key is claimed (IN_FLIGHT) in its own short statement, so a concurrent request with
/// the same key sees it at once; the response is stored in the same transaction as the order,
/// so "order exists" and "response stored" can never disagree. Each claim carries a token,
/// and only the request holding it completes or releases the key: a claim older than
/// ``abandonedAfterSeconds`` is taken to belong to a crashed request and may be taken over
/// with a new token, and if the original was only slow, its completion finds no claim of its
/// own and its transaction (with the order) rolls back.
package struct IdempotencyStore: Sendable {
    /// A claim held by one request.
    package struct Token: Sendable, Hashable {
        package let userId: UUID
        package let key: String
        package let value: UUID
    }

    /// What claiming a key found.
    package enum Claim: Sendable {
        /// This request owns the key and must complete or release it.
        case acquired(Token)
        /// Finished before: answer with the stored response.
        case replay(status: Int, body: String)
        /// The key was used with another request body.
        case mismatch
        /// The first request with this key is still running.
        case inFlight
    }

    /// The claim was taken over by a later request with the same key.
    package struct ClaimLost: Error, CustomStringConvertible {
        package var description: String { "the Idempotency-Key claim was taken over by a later request" }
    }

    /// An IN_FLIGHT claim older than this is taken to belong to a crashed request.
    package static let abandonedAfterSeconds = 60

    /// Creates the store.
    package init() {}

    /// Claims `key` for `userId`'s request with body hash `requestHash`.
    package func claim(userId: UUID, key: String, requestHash: String, on pool: PostgresPool) async throws -> Claim {
        for _ in 0..<2 {
            let token = Token(userId: userId, key: key, value: UUID())
            let inserted = try await pool.query(
                """
                INSERT INTO idempotency_keys (user_id, key, request_hash, status, claim_token, expires_at)
                VALUES ($1, $2, $3, 'IN_FLIGHT', $4, now() + interval '24 hours') ON CONFLICT DO NOTHING
                """, [userId, key, requestHash, token.value])
            if inserted.affectedRows == 1 { return .acquired(token) }
            guard
                let row = try await pool.query(
                    """
                    SELECT request_hash, status, response_status, response_body::text AS body, expires_at < now() AS expired,
                           created_at < now() - make_interval(secs => $3) AS abandoned
                    FROM idempotency_keys WHERE user_id = $1 AND key = $2
                    """, [userId, key, Self.abandonedAfterSeconds]
                ).first
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
    /// normalises it), so the first answer and every replay are byte-identical. Throws
    /// ``ClaimLost`` when the claim is no longer this request's, which rolls the caller's
    /// transaction back.
    package func complete(_ token: Token, status: Int, body: Data, on db: PostgresConnection) async throws -> String {
        let rows = try await db.query(
            """
            UPDATE idempotency_keys SET status = 'COMPLETED', response_status = $4, response_body = $5
            WHERE user_id = $1 AND key = $2 AND claim_token = $3 AND status = 'IN_FLIGHT' RETURNING response_body::text AS body
            """, [token.userId, token.key, token.value, status, PostgresJSON(data: body)])
        guard let row = rows.first else { throw ClaimLost() }
        return try row.decode(String.self, "body")
    }

    /// Deletes the claim if it is still this token's and still in flight.
    package func release(_ token: Token, on pool: PostgresPool) async throws {
        try await pool.query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND claim_token = $3 AND status = 'IN_FLIGHT'",
            [token.userId, token.key, token.value])
    }

    /// Deletes, at most `batch`, keys expired longer than `age` ago.
    package func pruneExpired(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            """
            DELETE FROM idempotency_keys WHERE (user_id, key) IN (
              SELECT user_id, key FROM idempotency_keys WHERE expires_at < now() - make_interval(secs => $1) LIMIT $2)
            """, [age.secondsWithFraction, batch]
        ).affectedRows
    }

    /// Deletes, at most `batch`, claims left IN_FLIGHT longer than `age` (their request crashed).
    package func pruneAbandoned(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            """
            DELETE FROM idempotency_keys WHERE (user_id, key) IN (
              SELECT user_id, key FROM idempotency_keys WHERE status = 'IN_FLIGHT' AND created_at < now() - make_interval(secs => $1) LIMIT $2)
            """, [age.secondsWithFraction, batch]
        ).affectedRows
    }

    /// How many claims are in flight (for drills and status).
    package func inFlight(on pool: PostgresPool) async throws -> Int {
        try await pool.query("SELECT count(*) AS n FROM idempotency_keys WHERE status = 'IN_FLIGHT'")[0].decode(Int.self, "n")
    }
}
