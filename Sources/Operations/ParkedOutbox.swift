import Foundation
import Postgres

/// Outbox rows the relay parked because the broker kept refusing them (returned as
/// unroutable, nacked) or they could not be decoded: listed for an operator and handed
/// back to the relay once the cause is fixed (`emporium outbox parked`, `emporium outbox retry`).
public struct ParkedOutbox: Sendable {
    /// One parked row.
    public struct Row: Sendable, Encodable {
        public let id: UUID
        public let eventType: String
        public let orderId: UUID?
        public let exchange: String
        public let routingKey: String
        public let attempts: Int
        public let lastError: String?
        public let createdAt: Date
        public let parkedAt: Date
    }

    let pool: PostgresPool

    /// Works on the database behind `pool`.
    public init(pool: PostgresPool) { self.pool = pool }

    /// The parked rows, oldest first, at most `limit`.
    public func list(limit: Int = 100) async throws -> [Row] {
        try await pool.query(
            """
            SELECT id, event_type, order_id, exchange, routing_key, attempts, last_error, created_at, parked_at
            FROM outbox WHERE published_at IS NULL AND parked_at IS NOT NULL ORDER BY parked_at, created_at LIMIT $1
            """, [limit]
        ).map {
            Row(id: try $0.decode(UUID.self, "id"), eventType: try $0.decode(String.self, "event_type"), orderId: try $0.decode(UUID?.self, "order_id"),
                exchange: try $0.decode(String.self, "exchange"), routingKey: try $0.decode(String.self, "routing_key"),
                attempts: try $0.decode(Int.self, "attempts"), lastError: try $0.decode(String?.self, "last_error"),
                createdAt: try $0.decode(Date.self, "created_at"), parkedAt: try $0.decode(Date.self, "parked_at"))
        }
    }

    /// Hands parked rows back to the relay with their attempts reset: the ones in `ids`, or
    /// every parked row when `ids` is nil. Returns how many.
    public func retry(ids: [UUID]?) async throws -> Int {
        try await pool.query(
            """
            UPDATE outbox SET parked_at = NULL, attempts = 0
            WHERE published_at IS NULL AND parked_at IS NOT NULL AND ($1::uuid[] IS NULL OR id = ANY($1))
            """, [ids]).affectedRows
    }
}
