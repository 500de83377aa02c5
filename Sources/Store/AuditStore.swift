import Foundation
import Postgres

/// The audit log (`audit_log`): who changed what, from the operator console, with the
/// object's state before and after. Written in the same transaction as the change when
/// there is one, so the log never claims a change that was rolled back.
package struct AuditStore: Sendable {
    /// Creates the store.
    package init() {}

    /// One entry, as the console shows it.
    package struct Entry: Sendable {
        package let actorId: UUID
        package let actorEmail: String
        package let action: String
        package let objectType: String
        package let objectId: String
        package let before: String?
        package let after: String?
        package let at: Date
    }

    /// Records `action` by `actor` on `objectType`/`objectId`; `before` and `after` are JSON.
    package func record(
        actor: UUID, action: String, objectType: String, objectId: String, before: String?, after: String?, on db: PostgresConnection
    ) async throws {
        _ = try await db.query(
            "INSERT INTO audit_log (actor_id, action, object_type, object_id, before, after) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)",
            [actor, action, objectType, objectId, before, after])
    }

    /// The entries about one object, oldest first (at most `limit`).
    package func entries(objectType: String, objectId: String, limit: Int = 200, on pool: PostgresPool) async throws -> [Entry] {
        let rows = try await pool.query(
            """
            SELECT a.actor_id, u.email, a.action, a.object_type, a.object_id, a.before::text AS before, a.after::text AS after, a.at
            FROM audit_log a JOIN users u ON u.id = a.actor_id
            WHERE a.object_type = $1 AND a.object_id = $2 ORDER BY a.at, a.id LIMIT $3
            """, [objectType, objectId, limit])
        return try rows.map {
            Entry(
                actorId: try $0.decode(UUID.self, "actor_id"), actorEmail: try $0.decode(String.self, "email"), action: try $0.decode(String.self, "action"),
                objectType: try $0.decode(String.self, "object_type"), objectId: try $0.decode(String.self, "object_id"),
                before: try $0.decode(String?.self, "before"), after: try $0.decode(String?.self, "after"), at: try $0.decode(Date.self, "at"))
        }
    }
}
