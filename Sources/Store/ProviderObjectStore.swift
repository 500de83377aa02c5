import Foundation
import Postgres

/// `provider_objects`: the objects a payment provider adapter created at the provider, by the
/// idempotency key it created them under. Written on its own pool, outside the worker's
/// transaction and before the object can move money, so a worker that dies after the
/// provider acted finds the object again instead of creating a second one.
package struct ProviderObjectStore: Sendable {
    let pool: PostgresPool

    /// Creates the store over `pool`, which must not be the pool whose transaction calls it.
    package init(pool: PostgresPool) { self.pool = pool }

    /// The id of the object created under `key`, if any.
    package func object(key: String) async throws -> String? {
        try await pool.query("SELECT object_id FROM provider_objects WHERE idempotency_key = $1", [key]).first?.decode(String.self, "object_id")
    }

    /// Records the object created under `key` (the first record wins) and returns the recorded id.
    package func record(key: String, provider: String, kind: String, objectId: String) async throws -> String {
        try await pool.query(
            "INSERT INTO provider_objects (idempotency_key, provider, kind, object_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            [key, provider, kind, objectId])
        return try await object(key: key) ?? objectId
    }
}
