import Domain
import Foundation
import Metrics
import Postgres

/// Moves an order to a new status if, and only if, it is in a state that allows it, and
/// records the change in its history.
public enum OrderTransition {
    /// The moved order's facts the next command needs.
    public struct Moved: Sendable {
        public let userId: UUID
        public let totalCents: Int
        public let currency: String
        public let paymentMethod: String
        public let from: OrderStatus
    }

    /// `orders_finalized_total{status}` for outcomes, and `saga_step_seconds{step}` (time
    /// since placement) for the saga's steps. Recorded in the transaction; a rollback, rare
    /// and retried, can count a step twice.
    static func recordMetrics(target: OrderStatus, ageSeconds: Double) {
        switch target {
        case .awaitingPayment: recordSagaStep("reserved", ageSeconds: ageSeconds)
        case .confirmed: recordSagaStep("confirmed", ageSeconds: ageSeconds)
        default: break
        }
        if [.confirmed, .cancelled, .delivered].contains(target) {
            Counter(label: "orders_finalized_total", dimensions: [("status", target.rawValue)]).increment()
        }
    }

    /// Records that an order reached saga step `step` `ageSeconds` after it was placed.
    public static func recordSagaStep(_ step: String, ageSeconds: Double) {
        Metrics.Timer(label: "saga_step_seconds", dimensions: [("step", step)]).recordNanoseconds(Int64(max(0, ageSeconds) * 1e9))
    }

    /// Applies the transition; nil when the order is not in an allowed source state.
    public static func apply(_ orderId: UUID, to target: OrderStatus, reason: CancellationReason? = nil, on db: PostgresConnection) async throws -> Moved? {
        let allowed = OrderStatus.allowedSources(of: target).map(\.rawValue)
        let rows = try await db.query(
            """
            WITH previous AS (SELECT id, status FROM orders WHERE id = $1 FOR NO KEY UPDATE)
            UPDATE orders o SET status = $2, cancellation_reason = $3, updated_at = now()
            FROM previous WHERE o.id = previous.id AND previous.status = ANY($4)
            RETURNING o.user_id, o.total_cents, o.currency, o.payment_method, previous.status AS from_status,
                      extract(epoch FROM now() - o.created_at)::float8 AS age_seconds
            """,
            [orderId, target.rawValue, reason?.rawValue, allowed])
        guard let row = rows.first else { return nil }
        let from = try row.decode(String.self, "from_status")
        try await db.query(
            "INSERT INTO order_status_history (order_id, from_status, to_status, reason) VALUES ($1, $2, $3, $4)",
            [orderId, from, target.rawValue, reason?.rawValue])
        recordMetrics(target: target, ageSeconds: try row.decode(Double.self, "age_seconds"))
        return Moved(
            userId: try row.decode(UUID.self, "user_id"), totalCents: try row.decode(Int.self, "total_cents"),
            currency: try row.decode(String.self, "currency"), paymentMethod: try row.decode(String.self, "payment_method"),
            from: OrderStatus(rawValue: from) ?? .pending)
    }
}
