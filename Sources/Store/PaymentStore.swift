import Domain
import Foundation
import Postgres

/// Payments and refunds: `payments` and `refunds`, written by the API (a manual payment's
/// intent and confirmation) and the payment worker (charges and refunds) through this one
/// store. The payment id is derived from the order (``PaymentIds``), so both meet on one row.
package struct PaymentStore: Sendable {
    /// Creates the store.
    package init() {}

    /// A payment as the worker decides about it.
    package struct Payment: Sendable {
        package let id: UUID
        package let status: PaymentStatus
        package let method: String
        package let failureReason: String?
        package let amountCents: Int
        package let currency: String
        package let providerReference: String?
    }

    static let columns = "id, status, method, failure_reason, amount_cents, currency, provider_reference"

    private func payment(_ row: PostgresRow) throws -> Payment {
        Payment(
            id: try row.decode(UUID.self, "id"), status: PaymentStatus(rawValue: try row.decode(String.self, "status")) ?? .pending,
            method: try row.decode(String.self, "method"), failureReason: try row.decode(String?.self, "failure_reason"),
            amountCents: try row.decode(Int.self, "amount_cents"), currency: try row.decode(String.self, "currency"),
            providerReference: try row.decode(String?.self, "provider_reference"))
    }

    /// What a new payment row holds.
    package struct NewPayment: Sendable {
        package let id: UUID
        package let orderId: UUID
        package let userId: UUID
        package let amountCents: Int
        package let currency: String
        package let method: String
        package let provider: String
        package init(id: UUID, orderId: UUID, userId: UUID, amountCents: Int, currency: String, method: String, provider: String) {
            self.id = id
            self.orderId = orderId
            self.userId = userId
            self.amountCents = amountCents
            self.currency = currency
            self.method = method
            self.provider = provider
        }
    }

    /// Creates the payment as PENDING unless it exists, then locks and returns it. The insert
    /// waits for another transaction's uncommitted row with the same id (a charge in
    /// progress), so two deliveries never decide about one payment at once.
    package func claim(_ new: NewPayment, on db: PostgresConnection) async throws -> Payment {
        try await db.query(
            """
            INSERT INTO payments (id, order_id, user_id, amount_cents, currency, method, status, provider)
            VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7) ON CONFLICT (id) DO NOTHING
            """,
            [new.id, new.orderId, new.userId, new.amountCents, new.currency, new.method, new.provider])
        return try payment(try await db.query("SELECT \(Self.columns) FROM payments WHERE id = $1 FOR UPDATE", [new.id])[0])
    }

    /// The payment with `id`, locked until the transaction ends.
    package func lock(_ id: UUID, on db: PostgresConnection) async throws -> Payment? {
        try await db.query("SELECT \(Self.columns) FROM payments WHERE id = $1 FOR UPDATE", [id]).first.map(payment)
    }

    /// Records a charge.
    package func markSucceeded(_ id: UUID, reference: String, on db: PostgresConnection) async throws {
        try await db.query(
            "UPDATE payments SET status = 'SUCCEEDED', provider_reference = $2, failure_reason = NULL, updated_at = now() WHERE id = $1", [id, reference])
    }

    /// Records a failure with its reason (a decline code, or one of ``PaymentStatus/ownFailureReasons``).
    package func markFailed(_ id: UUID, reason: String, onlyIfPending: Bool = false, on db: PostgresConnection) async throws {
        try await db.query(
            "UPDATE payments SET status = 'FAILED', failure_reason = $2, updated_at = now() WHERE id = $1 AND (NOT $3 OR status = 'PENDING')",
            [id, reason, onlyIfPending])
    }

    /// Records the refund of a charged payment (once: one refund per payment) and marks it refunded.
    package func recordRefund(
        _ refundId: UUID, of paymentId: UUID, amountCents: Int, currency: String, reference: String, reason: String,
        on db: PostgresConnection
    ) async throws {
        try await db.query(
            """
            INSERT INTO refunds (id, payment_id, amount_cents, currency, status, provider_reference, reason)
            VALUES ($1, $2, $3, $4, 'SUCCEEDED', $5, $6) ON CONFLICT (payment_id) DO NOTHING
            """, [refundId, paymentId, amountCents, currency, reference, reason])
        try await db.query("UPDATE payments SET status = 'REFUNDED', updated_at = now() WHERE id = $1", [paymentId])
    }

    /// Whether the order's payment was ever charged (succeeded, or refunded since).
    package func wasCharged(orderId: UUID, on db: PostgresConnection) async throws -> Bool {
        try await db.query("SELECT 1 FROM payments WHERE order_id = $1 AND status IN ('SUCCEEDED', 'REFUNDED')", [orderId]).count > 0
    }

    // MARK: Manual payments (the API)

    /// Creates a manual payment's row (PENDING, method `manual`) unless it exists; returns its status.
    package func openManual(_ new: NewPayment, on pool: PostgresPool) async throws -> PaymentStatus {
        try await pool.query(
            """
            INSERT INTO payments (id, order_id, user_id, amount_cents, currency, method, status, provider)
            VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7) ON CONFLICT (id) DO NOTHING
            """, [new.id, new.orderId, new.userId, new.amountCents, new.currency, PaymentIds.manualMethod, new.provider])
        return PaymentStatus(rawValue: try await pool.query("SELECT status FROM payments WHERE id = $1", [new.id])[0].decode(String.self, "status")) ?? .pending
    }

    /// A user's manual payment with its order, locked for confirmation.
    package struct Confirmable: Sendable {
        package let orderId: UUID
        package let amountCents: Int
        package let currency: String
        package let status: PaymentStatus
        package let method: String
        package let orderStatus: OrderStatus?
        package let traceparent: String?
    }

    /// The user's payment `id` with its order, locked until the transaction ends; nil when it
    /// is not theirs.
    package func confirmable(_ id: UUID, ofUser userId: UUID, on db: PostgresConnection) async throws -> Confirmable? {
        try await db.query(
            """
            SELECT p.order_id, p.amount_cents, p.currency, p.status, p.method, o.status AS order_status, o.trace_parent
            FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = $1 AND p.user_id = $2 FOR UPDATE OF p
            """, [id, userId]
        ).first.map {
            Confirmable(
                orderId: try $0.decode(UUID.self, "order_id"), amountCents: try $0.decode(Int.self, "amount_cents"),
                currency: try $0.decode(String.self, "currency"), status: PaymentStatus(rawValue: try $0.decode(String.self, "status")) ?? .pending,
                method: try $0.decode(String.self, "method"), orderStatus: OrderStatus(rawValue: try $0.decode(String.self, "order_status")),
                traceparent: try $0.decode(String?.self, "trace_parent"))
        }
    }

    /// Records the card a manual payment is confirmed with (so a second confirmation is refused).
    package func setMethod(_ id: UUID, to method: String, on db: PostgresConnection) async throws {
        try await db.query("UPDATE payments SET method = $2, updated_at = now() WHERE id = $1", [id, method])
    }

    /// A payment in a customer's history, with what was refunded.
    package struct HistoryEntry: Codable, Sendable {
        package let id: UUID
        package let orderId: UUID
        package let amountCents: Int
        package let currency: String
        package let method: String
        package let status: String
        package let failureReason: String?
        package let refundedCents: Int?
        package let createdAt: Date
    }

    /// The user's payments, newest first.
    package func history(of userId: UUID, size: Int, offset: Int, on pool: PostgresPool) async throws -> (payments: [HistoryEntry], total: Int) {
        let rows = try await pool.query(
            """
            SELECT p.id, p.order_id, p.amount_cents, p.currency, p.method, p.status, p.failure_reason, r.amount_cents AS refunded_cents,
                   p.created_at, count(*) OVER () AS total
            FROM payments p LEFT JOIN refunds r ON r.payment_id = p.id
            WHERE p.user_id = $1 ORDER BY p.created_at DESC, p.id LIMIT $2 OFFSET $3
            """, [userId, size, offset])
        let entries = try rows.map {
            HistoryEntry(
                id: try $0.decode(UUID.self, "id"), orderId: try $0.decode(UUID.self, "order_id"), amountCents: try $0.decode(Int.self, "amount_cents"),
                currency: try $0.decode(String.self, "currency"), method: try $0.decode(String.self, "method"), status: try $0.decode(String.self, "status"),
                failureReason: try $0.decode(String?.self, "failure_reason"), refundedCents: try $0.decode(Int?.self, "refunded_cents"),
                createdAt: try $0.decode(Date.self, "created_at"))
        }
        return (entries, try rows.first?.decode(Int.self, "total") ?? 0)
    }
}
