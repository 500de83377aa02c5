import Foundation
import Postgres

/// `Idempotency-Key` bookkeeping for `POST /api/v1/orders`, scoped per user and kept 24 h.
///
/// The key is claimed (IN_FLIGHT) in its own short transaction, so a concurrent request
/// with the same key sees it at once; the response is stored in the same transaction as
/// the order, so "order exists" and "response stored" can never disagree.
struct IdempotencyStore: Sendable {
    enum Claim: Sendable {
        /// This request owns the key and must complete or release it.
        case acquired
        /// Finished before: answer with the stored response.
        case replay(status: Int, body: String)
        /// The key was used with another request body.
        case mismatch
        /// The first request with this key is still running.
        case inFlight
    }

    let pool: PostgresPool
    /// An IN_FLIGHT claim older than this is taken to belong to a crashed request.
    static let abandonedAfterSeconds = 60

    func claim(userId: UUID, key: String, requestHash: String) async throws -> Claim {
        for _ in 0..<2 {
            let inserted = try await pool.query(
                """
                INSERT INTO idempotency_keys (user_id, key, request_hash, status, expires_at)
                VALUES ($1, $2, $3, 'IN_FLIGHT', now() + interval '24 hours') ON CONFLICT DO NOTHING
                """, [userId, key, requestHash])
            if inserted.affectedRows == 1 { return .acquired }
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
                let taken = try await pool.query(
                    """
                    UPDATE idempotency_keys SET created_at = now() WHERE user_id = $1 AND key = $2 AND status = 'IN_FLIGHT'
                      AND created_at < now() - make_interval(secs => $3)
                    """, [userId, key, Self.abandonedAfterSeconds])
                if taken.affectedRows == 1 { return .acquired }
            }
            return .inFlight
        }
        return .inFlight
    }

    /// Stores the response in the caller's transaction; returns the body as stored (jsonb
    /// normalises it), so the first answer and every replay are byte-identical.
    func complete(userId: UUID, key: String, status: Int, body: Data, on db: PostgresConnection) async throws -> String {
        try await db.query(
            """
            UPDATE idempotency_keys SET status = 'COMPLETED', response_status = $3, response_body = $4
            WHERE user_id = $1 AND key = $2 RETURNING response_body::text AS body
            """, [userId, key, status, PostgresJSON(data: body)])[0].decode(String.self, "body")
    }

    /// Gives the key back after a failed attempt, so the client may retry with it. If the
    /// database is unreachable right now, keeps trying in the background for a minute, so
    /// the client's retries are not answered 409 for longer than the outage lasts.
    func release(userId: UUID, key: String) async {
        let sql = "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND status = 'IN_FLIGHT'"
        if (try? await pool.query(sql, [userId, key])) != nil { return }
        let pool = self.pool
        Task {
            for _ in 0..<120 {
                try? await Task.sleep(for: .milliseconds(500))
                if (try? await pool.query(sql, [userId, key])) != nil { return }
            }
        }
    }
}
