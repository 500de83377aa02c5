import Domain
import Foundation
import Postgres
import Units

/// The saga reconciler's reads across the order's tables and its bookkeeping table
/// `saga_redrives` (how often and when each order was re-driven).
package struct SagaStore: Sendable {
    /// Creates the store.
    package init() {}

    /// A stalled order and the steps it misses (`reserve`, `pay`, `commit`, `release`, `refund`).
    package struct Stalled: Sendable {
        package let orderId: UUID
        package let userId: UUID
        package let totalCents: Int
        package let currency: String
        package let paymentMethod: String
        /// The card of a confirmed manual payment, which a re-driven charge must use.
        package let confirmedMethod: String?
        package let cancellationReason: String?
        package let traceparent: String?
        package let redrives: Int
        package let steps: [String]
    }

    /// Stalled orders, oldest first, at most `limit`: orders that have not moved for `stall`
    /// (settled ones within `lookback`) and miss a step, whose events are not waiting in the
    /// outbox, and whose last re-drive is `stall` × (re-drives + 1) old. Orders at `maxRedrives`
    /// come back once more (with `redrives == maxRedrives`) to be reported, then never again.
    /// Orders missing any step of `skipping` are left out (their work queue has a backlog).
    package func stalled(
        stall: Duration, lookback: Duration, maxRedrives: Int, skipping: Set<String> = [], limit: Int, on db: PostgresConnection
    ) async throws -> [Stalled] {
        try await db.query(Self.candidates, [stall.secondsWithFraction, lookback.secondsWithFraction, maxRedrives, limit, skipping.sorted()]).map {
            Stalled(
                orderId: try $0.decode(UUID.self, "id"), userId: try $0.decode(UUID.self, "user_id"), totalCents: try $0.decode(Int.self, "total_cents"),
                currency: try $0.decode(String.self, "currency"), paymentMethod: try $0.decode(String.self, "payment_method"),
                confirmedMethod: try $0.decode(String?.self, "confirmed_method"), cancellationReason: try $0.decode(String?.self, "cancellation_reason"),
                traceparent: try $0.decode(String?.self, "trace_parent"), redrives: try $0.decode(Int.self, "redrives"),
                steps: try $0.decode([String].self, "steps"))
        }
    }

    /// Records a re-drive of `steps` for the order.
    package func recordRedrive(_ orderId: UUID, steps: [String], on db: PostgresConnection) async throws {
        try await db.query(
            """
            INSERT INTO saga_redrives (order_id, redrives, last_step, last_redriven_at) VALUES ($1, 1, $2, now())
            ON CONFLICT (order_id) DO UPDATE SET redrives = saga_redrives.redrives + 1, last_step = $2, last_redriven_at = now()
            """, [orderId, steps.joined(separator: ",")])
    }

    /// Marks orders past the re-drive limit as reported (they are not selected again).
    package func markReported(_ orderIds: [UUID], on db: PostgresConnection) async throws {
        try await db.query("UPDATE saga_redrives SET redrives = redrives + 1 WHERE order_id = ANY($1)", [orderIds])
    }

    /// Deletes, at most `batch`, records whose last re-drive is older than `age`.
    package func prune(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            "DELETE FROM saga_redrives WHERE order_id IN (SELECT order_id FROM saga_redrives WHERE last_redriven_at < now() - make_interval(secs => $1) LIMIT $2)",
            [age.secondsWithFraction, batch]
        ).affectedRows
    }

    /// Stalled orders and their missing steps. Parameters: $1 stall and $2 lookback (seconds),
    /// $3 the re-drive limit, $4 the batch size, $5 the steps to skip.
    static let candidates = """
        WITH stalled AS (
          SELECT o.id, ARRAY['reserve'] AS steps FROM orders o
          WHERE o.status = 'PENDING' AND o.updated_at < now() - make_interval(secs => $1)
          UNION ALL
          SELECT o.id, ARRAY['pay'] FROM orders o
          WHERE o.status = 'AWAITING_PAYMENT' AND o.updated_at < now() - make_interval(secs => $1)
            AND (o.payment_method <> 'manual'
                 OR EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.method <> 'manual'))
          UNION ALL
          SELECT DISTINCT o.id, ARRAY['commit'] FROM stock_reservations r JOIN orders o ON o.id = r.order_id
          WHERE r.status = 'RESERVED' AND o.status IN ('CONFIRMED', 'SHIPPED', 'DELIVERED', 'PARTIALLY_REFUNDED', 'REFUNDED') AND o.updated_at < now() - make_interval(secs => $1)
          UNION ALL
          SELECT o.id, array_remove(ARRAY[
                   CASE WHEN EXISTS (SELECT 1 FROM stock_reservations r WHERE r.order_id = o.id AND r.status IN ('RESERVED', 'COMMITTED'))
                        THEN 'release' END,
                   CASE WHEN EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status IN ('SUCCEEDED', 'PENDING', 'AUTHORIZED'))
                          OR (NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id)
                              AND EXISTS (SELECT 1 FROM order_status_history h WHERE h.order_id = o.id AND h.to_status = 'AWAITING_PAYMENT'))
                        THEN 'refund' END], NULL)
          FROM orders o
          WHERE o.status = 'CANCELLED' AND o.updated_at < now() - make_interval(secs => $1)
            AND o.updated_at > now() - make_interval(secs => $1 + $2)
        )
        SELECT o.id, o.user_id, o.total_cents, o.currency, o.payment_method, o.cancellation_reason, o.trace_parent,
               (SELECT p.method FROM payments p WHERE p.order_id = o.id AND p.method <> 'manual') AS confirmed_method,
               coalesce(r.redrives, 0) AS redrives, s.steps
        FROM stalled s JOIN orders o ON o.id = s.id
        LEFT JOIN saga_redrives r ON r.order_id = o.id
        WHERE cardinality(s.steps) > 0 AND NOT (s.steps && $5::text[])
          AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.order_id = o.id AND x.published_at IS NULL)
          AND (r.order_id IS NULL
               OR (r.redrives < $3 AND r.last_redriven_at < now() - make_interval(secs => $1 * (r.redrives + 1)))
               OR r.redrives = $3)
        ORDER BY o.updated_at
        LIMIT $4
        """
}
