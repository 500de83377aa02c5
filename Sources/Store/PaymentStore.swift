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
        /// Refunded so far.
        package let refundedCents: Int
    }

    static let columns = "id, status, method, failure_reason, amount_cents, currency, provider_reference, refunded_cents"

    private func payment(_ row: PostgresRow) throws -> Payment {
        Payment(
            id: try row.decode(UUID.self, "id"), status: PaymentStatus(rawValue: try row.decode(String.self, "status")) ?? .pending,
            method: try row.decode(String.self, "method"), failureReason: try row.decode(String?.self, "failure_reason"),
            amountCents: try row.decode(Int.self, "amount_cents"), currency: try row.decode(String.self, "currency"),
            providerReference: try row.decode(String?.self, "provider_reference"), refundedCents: try row.decode(Int.self, "refunded_cents"))
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
    ///
    /// `ON CONFLICT DO NOTHING` names no index on purpose: a payment's id is derived from its
    /// order (`PaymentIds.paymentId`), so the primary key and `payments_one_per_order` always
    /// conflict together, and both must be arbiters. With only `(id)` named, two concurrent
    /// inserts could meet first on the per-order index and fail with 23505 (a re-drive racing a
    /// delivery during a broker outage dead-lettered a `payment.requested` that way).
    /// The insert is queued (``PostgresConnection/enqueue(_:_:)``) and goes out with the
    /// locking read, so a claim is one round trip inside a transaction.
    package func claim(_ new: NewPayment, on db: PostgresConnection) async throws -> Payment {
        try await db.enqueue(
            """
            INSERT INTO payments (id, order_id, user_id, amount_cents, currency, method, status, provider)
            VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7) ON CONFLICT DO NOTHING
            """,
            [new.id, new.orderId, new.userId, new.amountCents, new.currency, new.method, new.provider])
        return try payment(try await db.query("SELECT \(Self.columns) FROM payments WHERE id = $1 FOR UPDATE", [new.id])[0])
    }

    /// ``claim(_:on:)`` for a payment worker's batch, in one round trip: creates the payments
    /// that do not exist, then locks every one and returns them by id. Both statements go in
    /// id order, so two batches that share a payment (a redelivery beside its original) wait
    /// for each other instead of deadlocking.
    package func claim(_ batch: [NewPayment], on db: PostgresConnection) async throws -> [UUID: Payment] {
        // uuid order is byte order, which the upper-case hex of `uuidString` keeps.
        let sorted = batch.sorted { $0.id.uuidString < $1.id.uuidString }
        try await db.enqueue(
            """
            INSERT INTO payments (id, order_id, user_id, amount_cents, currency, method, status, provider)
            SELECT id, order_id, user_id, amount_cents, currency, method, 'PENDING', provider
            FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], $6::text[], $7::text[])
                AS p(id, order_id, user_id, amount_cents, currency, method, provider)
            ON CONFLICT DO NOTHING
            """,
            [
                sorted.map(\.id), sorted.map(\.orderId), sorted.map(\.userId), sorted.map(\.amountCents), sorted.map(\.currency),
                sorted.map(\.method), sorted.map(\.provider),
            ])
        let rows = try await db.query("SELECT \(Self.columns) FROM payments WHERE id = ANY($1) ORDER BY id FOR UPDATE", [sorted.map(\.id)])
        var claimed: [UUID: Payment] = [:]
        for row in rows {
            let payment = try payment(row)
            claimed[payment.id] = payment
        }
        return claimed
    }

    /// The payment with `id`, locked until the transaction ends.
    package func lock(_ id: UUID, on db: PostgresConnection) async throws -> Payment? {
        try await db.query("SELECT \(Self.columns) FROM payments WHERE id = $1 FOR UPDATE", [id]).first.map(payment)
    }

    /// The order of the payment the provider knows as `reference` (a PaymentIntent id).
    package func orderId(ofReference reference: String, on db: PostgresConnection) async throws -> UUID? {
        try await db.query("SELECT order_id FROM payments WHERE provider_reference = $1", [reference]).first?.decode(UUID.self, "order_id")
    }

    /// A payment Emporium holds as charged or authorised, for reconciliation.
    package struct Captured: Sendable {
        package let id: UUID
        package let orderId: UUID
        package let status: PaymentStatus
    }

    /// Payments through `provider` created since `since` that Emporium holds as charged or
    /// authorised (at most `limit`, oldest first).
    package func capturedSince(_ since: Date, provider: String, limit: Int, on db: PostgresConnection) async throws -> [Captured] {
        try await db.query(
            """
            SELECT id, order_id, status FROM payments
            WHERE provider = $1 AND created_at >= $2 AND status IN ('AUTHORIZED', 'SUCCEEDED', 'PARTIALLY_REFUNDED')
            ORDER BY created_at LIMIT $3
            """, [provider, since, limit]
        ).map {
            Captured(
                id: try $0.decode(UUID.self, "id"), orderId: try $0.decode(UUID.self, "order_id"),
                status: PaymentStatus(rawValue: try $0.decode(String.self, "status")) ?? .pending)
        }
    }

    /// Records a charge. This mark and the three below are queued
    /// (``PostgresConnection/enqueue(_:_:)``): inside a transaction each goes out with the
    /// next statement or the `COMMIT`, in order, so a later read of the row sees it.
    package func markSucceeded(_ id: UUID, reference: String, on db: PostgresConnection) async throws {
        try await db.enqueue(
            "UPDATE payments SET status = 'SUCCEEDED', provider_reference = $2, failure_reason = NULL, updated_at = now() WHERE id = $1", [id, reference])
    }

    /// Records a failure with its reason (a decline code, or one of ``PaymentStatus/ownFailureReasons``).
    package func markFailed(_ id: UUID, reason: String, onlyIfPending: Bool = false, on db: PostgresConnection) async throws {
        try await db.enqueue(
            "UPDATE payments SET status = 'FAILED', failure_reason = $2, updated_at = now() WHERE id = $1 AND (NOT $3 OR status = 'PENDING')",
            [id, reason, onlyIfPending])
    }

    /// Records an authorisation held for capture.
    package func markAuthorized(_ id: UUID, reference: String, on db: PostgresConnection) async throws {
        try await db.enqueue(
            "UPDATE payments SET status = 'AUTHORIZED', provider_reference = $2, failure_reason = NULL, updated_at = now() WHERE id = $1", [id, reference])
    }

    /// Records an authorisation released without capture, with why.
    package func markVoided(_ id: UUID, reason: String, on db: PostgresConnection) async throws {
        try await db.enqueue("UPDATE payments SET status = 'VOIDED', failure_reason = $2, updated_at = now() WHERE id = $1", [id, reason])
    }

    /// The payment's refund totals after a refund was recorded.
    package struct RefundTotals: Sendable {
        package let refundedCents: Int
        package let amountCents: Int
    }

    /// Records a refund the provider made of a captured payment (a cancelled order's charge, or
    /// one found at the provider), once per provider reference, and adds it to the payment's
    /// refunded total; nil when that refund was recorded before.
    package func recordRefund(
        _ refundId: UUID, of paymentId: UUID, orderId: UUID, amountCents: Int, currency: String, reference: String, reason: String,
        on db: PostgresConnection
    ) async throws -> RefundTotals? {
        let inserted = try await db.query(
            """
            INSERT INTO refunds (id, payment_id, order_id, amount_cents, currency, status, provider_reference, reason)
            VALUES ($1, $2, $3, $4, $5, 'SUCCEEDED', $6, $7) ON CONFLICT DO NOTHING
            """, [refundId, paymentId, orderId, amountCents, currency, reference, reason])
        guard inserted.affectedRows == 1 else { return nil }
        return try await addRefunded(amountCents, to: paymentId, on: db)
    }

    /// Adds `amountCents` to the payment's refunded total and moves its status accordingly.
    private func addRefunded(_ amountCents: Int, to paymentId: UUID, on db: PostgresConnection) async throws -> RefundTotals {
        let row = try await db.query(
            """
            UPDATE payments SET refunded_cents = LEAST(amount_cents, refunded_cents + $2),
              status = CASE WHEN refunded_cents + $2 >= amount_cents THEN 'REFUNDED' ELSE 'PARTIALLY_REFUNDED' END, updated_at = now()
            WHERE id = $1 RETURNING refunded_cents, amount_cents
            """, [paymentId, amountCents])[0]
        return RefundTotals(refundedCents: try row.decode(Int.self, "refunded_cents"), amountCents: try row.decode(Int.self, "amount_cents"))
    }

    // MARK: Requested refunds (an admin's, by amount or by line)

    /// A refund as the payment worker carries it out.
    package struct Refund: Sendable {
        package let id: UUID
        package let paymentId: UUID
        package let orderId: UUID
        package let amountCents: Int
        package let currency: String
        package let status: RefundStatus
        package let restock: Bool
        package let lines: [OrderLine]
    }

    /// What a new requested refund holds.
    package struct NewRefund: Sendable {
        package let id: UUID
        package let paymentId: UUID
        package let orderId: UUID
        package let amountCents: Int
        package let currency: String
        package let reason: String
        package let restock: Bool
        package let requestedBy: UUID
        /// Per product: quantity and the amount it accounts for.
        package let lines: [(productId: UUID, quantity: Int, amountCents: Int)]
        package init(
            id: UUID, paymentId: UUID, orderId: UUID, amountCents: Int, currency: String, reason: String, restock: Bool, requestedBy: UUID,
            lines: [(productId: UUID, quantity: Int, amountCents: Int)]
        ) {
            self.id = id
            self.paymentId = paymentId
            self.orderId = orderId
            self.amountCents = amountCents
            self.currency = currency
            self.reason = reason
            self.restock = restock
            self.requestedBy = requestedBy
            self.lines = lines
        }
    }

    /// The order's payment with what is already refunded or being refunded, locked until the
    /// transaction ends, so two refund requests never both fit under the captured amount.
    package struct Refundable: Sendable {
        package let paymentId: UUID
        package let status: PaymentStatus
        package let amountCents: Int
        package let currency: String
        /// Refunded, plus refunds asked for and not failed yet.
        package let committedCents: Int
        /// Per product, the quantity already refunded or being refunded.
        package let refundedQuantities: [UUID: Int]
    }

    /// The order's payment for a refund decision, locked; nil when the order has no payment.
    package func refundable(orderId: UUID, on db: PostgresConnection) async throws -> Refundable? {
        guard let row = try await db.query("SELECT id, status, amount_cents, currency FROM payments WHERE order_id = $1 FOR UPDATE", [orderId]).first
        else { return nil }
        let paymentId = try row.decode(UUID.self, "id")
        let committed = try await db.query(
            "SELECT coalesce(sum(amount_cents), 0)::int8 AS total FROM refunds WHERE payment_id = $1 AND status <> 'FAILED'", [paymentId])[0]
        let lines = try await db.query(
            """
            SELECT l.product_id, sum(l.quantity)::int8 AS quantity FROM refund_lines l JOIN refunds r ON r.id = l.refund_id
            WHERE r.payment_id = $1 AND r.status <> 'FAILED' GROUP BY l.product_id
            """, [paymentId])
        return Refundable(
            paymentId: paymentId, status: PaymentStatus(rawValue: try row.decode(String.self, "status")) ?? .pending,
            amountCents: try row.decode(Int.self, "amount_cents"), currency: try row.decode(String.self, "currency"),
            committedCents: try committed.decode(Int.self, "total"),
            refundedQuantities: Dictionary(
                uniqueKeysWithValues: try lines.map { (try $0.decode(UUID.self, "product_id"), try $0.decode(Int.self, "quantity")) }))
    }

    /// Records a requested refund as PENDING, with its lines.
    package func request(_ refund: NewRefund, on db: PostgresConnection) async throws {
        try await db.query(
            """
            INSERT INTO refunds (id, payment_id, order_id, amount_cents, currency, status, reason, restock, requested_by)
            VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7, $8)
            """, [refund.id, refund.paymentId, refund.orderId, refund.amountCents, refund.currency, refund.reason, refund.restock, refund.requestedBy])
        guard !refund.lines.isEmpty else { return }
        try await db.query(
            """
            INSERT INTO refund_lines (refund_id, product_id, quantity, amount_cents)
            SELECT $1, product_id, quantity, amount FROM unnest($2::uuid[], $3::int4[], $4::int8[]) AS l(product_id, quantity, amount)
            """, [refund.id, refund.lines.map(\.productId), refund.lines.map(\.quantity), refund.lines.map(\.amountCents)])
    }

    /// The refund `id` with its lines, locked until the transaction ends.
    package func lockRefund(_ id: UUID, on db: PostgresConnection) async throws -> Refund? {
        guard
            let row = try await db.query(
                "SELECT id, payment_id, order_id, amount_cents, currency, status, restock FROM refunds WHERE id = $1 FOR UPDATE", [id]
            ).first
        else { return nil }
        let lines = try await db.query("SELECT product_id, quantity FROM refund_lines WHERE refund_id = $1 ORDER BY product_id", [id]).map {
            OrderLine(productId: try $0.decode(UUID.self, "product_id"), quantity: try $0.decode(Int.self, "quantity"))
        }
        return Refund(
            id: try row.decode(UUID.self, "id"), paymentId: try row.decode(UUID.self, "payment_id"), orderId: try row.decode(UUID.self, "order_id"),
            amountCents: try row.decode(Int.self, "amount_cents"), currency: try row.decode(String.self, "currency"),
            status: RefundStatus(rawValue: try row.decode(String.self, "status")) ?? .pending, restock: try row.decode(Bool.self, "restock"), lines: lines)
    }

    /// Marks a requested refund made by the provider and adds it to the payment's refunded total.
    package func completeRefund(_ refund: Refund, reference: String, on db: PostgresConnection) async throws -> RefundTotals {
        try await db.query(
            "UPDATE refunds SET status = 'SUCCEEDED', provider_reference = $2, updated_at = now() WHERE id = $1", [refund.id, reference])
        return try await addRefunded(refund.amountCents, to: refund.paymentId, on: db)
    }

    /// Marks a requested refund refused by the provider, with its reason.
    package func failRefund(_ id: UUID, reason: String, on db: PostgresConnection) async throws {
        try await db.query("UPDATE refunds SET status = 'FAILED', failure_reason = $2, updated_at = now() WHERE id = $1", [id, reason])
    }

    /// Marks a succeeded restocking refund's lines as returned to stock; false when they were
    /// returned before (or the refund does not restock), so stock comes back exactly once.
    package func markRestocked(_ refundId: UUID, on db: PostgresConnection) async throws -> Bool {
        try await db.query(
            "UPDATE refunds SET restocked_at = now() WHERE id = $1 AND restock AND status = 'SUCCEEDED' AND restocked_at IS NULL", [refundId]
        ).affectedRows == 1
    }

    /// Refund provider references already recorded for the payment.
    package func refundReferences(of paymentId: UUID, on db: PostgresConnection) async throws -> Set<String> {
        Set(
            try await db.query("SELECT provider_reference FROM refunds WHERE payment_id = $1 AND provider_reference IS NOT NULL", [paymentId]).map {
                try $0.decode(String.self, "provider_reference")
            })
    }

    /// A refund in an order's or a customer's view.
    package struct RefundEntry: Codable, Sendable {
        package let id: UUID
        package let amountCents: Int
        package let currency: String
        package let status: String
        package let reason: String?
        package let restock: Bool
        package let createdAt: Date
    }

    /// The order's refunds, oldest first.
    package func refunds(ofOrder orderId: UUID, on db: PostgresConnection) async throws -> [RefundEntry] {
        try await db.query(
            "SELECT id, amount_cents, currency, status, reason, restock, created_at FROM refunds WHERE order_id = $1 ORDER BY created_at, id", [orderId]
        ).map(refundEntry)
    }

    private func refundEntry(_ row: PostgresRow) throws -> RefundEntry {
        RefundEntry(
            id: try row.decode(UUID.self, "id"), amountCents: try row.decode(Int.self, "amount_cents"), currency: try row.decode(String.self, "currency"),
            status: try row.decode(String.self, "status"), reason: try row.decode(String?.self, "reason"), restock: try row.decode(Bool.self, "restock"),
            createdAt: try row.decode(Date.self, "created_at"))
    }

    /// Whether the order's payment was ever charged (succeeded, or refunded since).
    package func wasCharged(orderId: UUID, on db: PostgresConnection) async throws -> Bool {
        try await db.query("SELECT 1 FROM payments WHERE order_id = $1 AND status IN ('SUCCEEDED', 'PARTIALLY_REFUNDED', 'REFUNDED')", [orderId]).count > 0
    }

    // MARK: Manual payments (the API)

    /// Creates a manual payment's row (PENDING, method `manual`) unless it exists; returns its
    /// status. No conflict target, for the reason given at ``claim(_:on:)``.
    package func openManual(_ new: NewPayment, on pool: PostgresPool) async throws -> PaymentStatus {
        try await pool.query(
            """
            INSERT INTO payments (id, order_id, user_id, amount_cents, currency, method, status, provider)
            VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7) ON CONFLICT DO NOTHING
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

    /// Records the provider's reference of a client-confirmed payment's intent, unless one is recorded.
    package func setReference(_ id: UUID, to reference: String, on pool: PostgresPool) async throws {
        try await pool.query(
            "UPDATE payments SET provider_reference = $2, updated_at = now() WHERE id = $1 AND provider_reference IS NULL", [id, reference])
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
        /// Every refund of the payment, oldest first.
        package let refunds: [RefundEntry]
    }

    /// The user's payments, newest first.
    package func history(of userId: UUID, size: Int, offset: Int, on pool: PostgresPool) async throws -> (payments: [HistoryEntry], total: Int) {
        let (rows, total) = try await pool.page(
            select: """
                p.id, p.order_id, p.amount_cents, p.currency, p.method, p.status, p.failure_reason,
                NULLIF(p.refunded_cents, 0) AS refunded_cents, p.created_at
                """,
            "FROM payments p WHERE p.user_id = $1", orderBy: "p.created_at DESC, p.id", [userId], size: size, offset: offset)
        let paymentIds = try rows.map { try $0.decode(UUID.self, "id") }
        let refundRows = try await pool.query(
            "SELECT payment_id, id, amount_cents, currency, status, reason, restock, created_at FROM refunds WHERE payment_id = ANY($1::uuid[]) ORDER BY created_at, id",
            [paymentIds])
        var refunds: [UUID: [RefundEntry]] = [:]
        for row in refundRows { refunds[try row.decode(UUID.self, "payment_id"), default: []].append(try refundEntry(row)) }
        let entries = try rows.map {
            HistoryEntry(
                id: try $0.decode(UUID.self, "id"), orderId: try $0.decode(UUID.self, "order_id"), amountCents: try $0.decode(Int.self, "amount_cents"),
                currency: try $0.decode(String.self, "currency"), method: try $0.decode(String.self, "method"), status: try $0.decode(String.self, "status"),
                failureReason: try $0.decode(String?.self, "failure_reason"), refundedCents: try $0.decode(Int?.self, "refunded_cents"),
                createdAt: try $0.decode(Date.self, "created_at"), refunds: refunds[try $0.decode(UUID.self, "id")] ?? [])
        }
        return (entries, total)
    }
}
