import Foundation
import Messaging
import Postgres

/// Outbox rows the relay parked because the broker kept refusing them (returned as
/// unroutable, nacked) or they could not be decoded: listed for an operator and handed
/// back to the relay once the cause is fixed (`emporium outbox parked`, `emporium outbox retry`).
package struct ParkedOutbox: Sendable {
    /// One parked row.
    package typealias Row = OutboxStore.ParkedRow

    let pool: PostgresPool

    /// Works on the database behind `pool`.
    package init(pool: PostgresPool) { self.pool = pool }

    /// The parked rows, oldest first, at most `limit`.
    package func list(limit: Int = 100) async throws -> [Row] {
        try await OutboxStore.parked(limit: limit, on: pool)
    }

    /// Hands parked rows back to the relay with their attempts reset: the ones in `ids`, or
    /// every parked row when `ids` is nil. Returns how many.
    package func retry(ids: [UUID]?) async throws -> Int {
        try await OutboxStore.unpark(ids, on: pool)
    }
}
