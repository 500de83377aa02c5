import Foundation
import Postgres
import Units

/// The browser sessions (`console_sessions`) of the operator console and the storefront, each
/// row of one `scope`: server-side, so signing out, a suspension or a role change ends them
/// at once. The cookie holds a random token; only its SHA-256 is stored.
package struct ConsoleSessionStore: Sendable {
    /// Creates the store.
    package init() {}

    /// A live session: whose it is and the CSRF token its forms carry.
    package struct Session: Sendable {
        package let userId: UUID
        package let csrfToken: String
        package let createdAt: Date
    }

    /// Stores a new session that ends at `expiresAt` at the latest.
    package func create(tokenHash: String, userId: UUID, scope: String, csrfToken: String, expiresAt: Date, on pool: PostgresPool) async throws {
        _ = try await pool.query(
            "INSERT INTO console_sessions (token_hash, user_id, csrf_token, expires_at, scope) VALUES ($1, $2, $3, $4, $5)",
            [tokenHash, userId, csrfToken, expiresAt, scope])
    }

    /// The session for `tokenHash` when it is neither revoked, past its absolute expiry, nor
    /// idle for longer than `idle`; marks it used now (which restarts the idle clock).
    package func touch(tokenHash: String, scope: String, idle: Duration, on pool: PostgresPool) async throws -> Session? {
        let rows = try await pool.query(
            """
            UPDATE console_sessions SET last_seen_at = now()
            WHERE token_hash = $1 AND scope = $3 AND revoked_at IS NULL AND expires_at > now()
              AND last_seen_at > now() - make_interval(secs => $2)
            RETURNING user_id, csrf_token, created_at
            """, [tokenHash, Int(idle.components.seconds), scope])
        return try rows.first.map {
            Session(
                userId: try $0.decode(UUID.self, "user_id"), csrfToken: try $0.decode(String.self, "csrf_token"),
                createdAt: try $0.decode(Date.self, "created_at"))
        }
    }

    /// Ends one session (sign-out).
    package func revoke(tokenHash: String, on pool: PostgresPool) async throws {
        _ = try await pool.query("UPDATE console_sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL", [tokenHash])
    }

    /// Ends every session of `userId` (suspension, closure, a role change).
    package func revokeAll(userId: UUID, on pool: PostgresPool) async throws {
        _ = try await pool.query("UPDATE console_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", [userId])
    }

    /// Deletes, at most `batch`, sessions that ended (revoked, expired or idle past any idle
    /// limit a console allows, a day) longer than `age` ago (the retention sweep's rule).
    package func prune(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            """
            DELETE FROM console_sessions WHERE token_hash IN (
              SELECT token_hash FROM console_sessions
              WHERE least(coalesce(revoked_at, expires_at), expires_at, last_seen_at + interval '1 day') < now() - make_interval(secs => $1)
              LIMIT $2)
            """, [age.secondsWithFraction, batch]
        ).affectedRows
    }
}
