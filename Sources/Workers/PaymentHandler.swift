import Crypto
import Domain
import Foundation
import Messaging
import Postgres

/// Charges requested payments and refunds charged orders that were cancelled.
///
/// The payment id is derived from the order id, and it is the provider's idempotency key:
/// if the worker dies after the charge but before its commit, the redelivered request
/// computes the same key and the provider answers with the first charge.
///
/// Money is reconciled with the provider: before the worker concludes that an order that no
/// longer awaits payment needs no charge and no refund, it asks the provider (by that key)
/// whether a charge exists, and refunds it if the order was cancelled. The two paths that
/// can meet on one payment (a charge request and a cancellation) serialise on the payment's
/// row, so a refund happens once.
public struct PaymentHandler: EventHandler {
    public var consumerName: String { "payment" }
    let provider: any PaymentProvider

    /// Creates the handler over `provider`.
    public init(provider: any PaymentProvider) { self.provider = provider }

    /// The payment method of orders whose client confirms the payment itself.
    public static let manualMethod = PaymentIds.manualMethod

    /// The payment id of an order (see ``PaymentIds``).
    public static func paymentId(for orderId: UUID) -> UUID { PaymentIds.paymentId(for: orderId) }

    /// Failure reasons Emporium records itself (as opposed to a provider's decline code):
    /// a payment failed for one of these was never refused by the provider, so the provider
    /// is asked before anyone concludes that it holds no charge.
    static let ownFailureReasons = ["order_not_awaiting_payment", "order_cancelled"]

    public func handle(_ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        switch event.type {
        case EventType.paymentRequested: return try await charge(try event.payload(as: PaymentRequested.self), cause: event, db)
        case EventType.orderCancelled, EventType.paymentRefundRequested:
            return try await refundIfCharged(try event.payload(as: OrderOutcome.self).orderId, cause: event, db)
        default: throw PermanentFailure("payment worker does not handle \(event.type)")
        }
    }

    private func charge(_ request: PaymentRequested, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        let paymentId = Self.paymentId(for: request.orderId)
        try await db.query(
            """
            INSERT INTO payments (id, order_id, user_id, amount_cents, currency, method, status, provider)
            VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7) ON CONFLICT (id) DO NOTHING
            """,
            [paymentId, request.orderId, request.userId, request.amountCents, request.currency, request.paymentMethod, provider.name])
        let payment = try await db.query("SELECT status, failure_reason FROM payments WHERE id = $1 FOR NO KEY UPDATE", [paymentId])[0]
        let status = try payment.decode(String.self, "status")
        let order = try await db.query("SELECT status, extract(epoch FROM now() - created_at)::float8 AS age_seconds FROM orders WHERE id = $1", [request.orderId]).first
        let awaitingPayment = try order?.decode(String.self, "status") == OrderStatus.awaitingPayment.rawValue

        switch status {
        case "SUCCEEDED":
            // Charged before (this is a redelivery or a re-drive): if the order still waits,
            // its `payment.succeeded` never arrived, so say it again.
            return awaitingPayment ? [try outcome(.paymentSucceeded, request.orderId, paymentId, reason: nil, cause: cause)] : []
        case "FAILED":
            let reason = try payment.decode(String?.self, "failure_reason")
            if awaitingPayment { return [try outcome(.paymentFailed, request.orderId, paymentId, reason: reason, cause: cause)] }
            // Failed by our own decision, not the provider's: make sure no charge slipped through.
            guard let reason, Self.ownFailureReasons.contains(reason) else { return [] }
            return try await settleAfterOrderMovedOn(paymentId, orderId: request.orderId, cause: cause, db)
        case "PENDING":
            break
        default:
            return []
        }
        // `manual`: the client confirms through POST /api/v1/payments/confirm, which sends
        // this request again with the card token.
        if request.paymentMethod == Self.manualMethod { return [] }
        // An order that no longer awaits payment (cancelled or expired) is not charged now;
        // but a worker may have charged it and died before recording that: ask first.
        guard awaitingPayment else { return try await settleAfterOrderMovedOn(paymentId, orderId: request.orderId, cause: cause, db) }

        let result = try await provider.charge(ChargeRequest(
            idempotencyKey: paymentId.uuidString.lowercased(), orderId: request.orderId,
            amountCents: request.amountCents, currency: request.currency, paymentMethod: request.paymentMethod))
        switch result {
        case .succeeded(let reference):
            try await db.query("UPDATE payments SET status = 'SUCCEEDED', provider_reference = $2, failure_reason = NULL, updated_at = now() WHERE id = $1", [paymentId, reference])
            if let age = try order?.decode(Double.self, "age_seconds") { OrderTransition.recordSagaStep("paid", ageSeconds: age) }
            return [try outcome(.paymentSucceeded, request.orderId, paymentId, reason: nil, cause: cause)]
        case .declined(let code):
            try await db.query("UPDATE payments SET status = 'FAILED', failure_reason = $2, updated_at = now() WHERE id = $1", [paymentId, code])
            return [try outcome(.paymentFailed, request.orderId, paymentId, reason: code, cause: cause)]
        }
    }

    /// The order moved on (cancelled, expired) while its payment was not recorded as charged:
    /// asks the provider whether the charge happened anyway. A charge found is recorded and,
    /// the order being cancelled, refunded; otherwise the payment is marked failed.
    private func settleAfterOrderMovedOn(_ paymentId: UUID, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        switch try await provider.lookupCharge(idempotencyKey: paymentId.uuidString.lowercased()) {
        case .succeeded(let reference):
            try await db.query(
                "UPDATE payments SET status = 'SUCCEEDED', provider_reference = $2, failure_reason = NULL, updated_at = now() WHERE id = $1",
                [paymentId, reference])
            let status = try await db.query("SELECT status FROM orders WHERE id = $1", [orderId]).first?.decode(String.self, "status")
            guard status == OrderStatus.cancelled.rawValue else { return [] }
            return try await refund(paymentId, orderId: orderId, cause: cause, db)
        case .declined, .notFound:
            try await db.query(
                """
                UPDATE payments SET status = 'FAILED', failure_reason = coalesce(failure_reason, 'order_not_awaiting_payment'), updated_at = now()
                WHERE id = $1 AND status = 'PENDING'
                """, [paymentId])
            return []
        }
    }

    /// On cancellation: refunds the order's charge, if there is one. A payment that is not
    /// recorded as charged but could have been (the order reached payment) is checked with
    /// the provider first.
    private func refundIfCharged(_ orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        guard let order = try await db.query(
            """
            SELECT user_id, total_cents, currency, payment_method,
                   EXISTS (SELECT 1 FROM order_status_history h WHERE h.order_id = o.id AND h.to_status = 'AWAITING_PAYMENT') AS reached_payment
            FROM orders o WHERE id = $1
            """, [orderId]).first
        else { return [] }
        let paymentId = Self.paymentId(for: orderId)
        // An order that never reached payment was never charged (no payment.requested was sent).
        guard try order.decode(Bool.self, "reached_payment") else { return [] }
        // The insert waits for a charge in progress on this payment (its uncommitted row holds
        // the key), so a cancellation and a charge never decide about one payment at once.
        try await db.query(
            """
            INSERT INTO payments (id, order_id, user_id, amount_cents, currency, method, status, provider)
            VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7) ON CONFLICT (id) DO NOTHING
            """,
            [paymentId, orderId, try order.decode(UUID.self, "user_id"), try order.decode(Int.self, "total_cents"),
             try order.decode(String.self, "currency"), try order.decode(String.self, "payment_method"), provider.name])
        let payment = try await db.query("SELECT status, method, failure_reason FROM payments WHERE id = $1 FOR UPDATE", [paymentId])[0]
        switch try payment.decode(String.self, "status") {
        case "SUCCEEDED":
            return try await refund(paymentId, orderId: orderId, cause: cause, db)
        case "PENDING":
            // A manual payment the customer never confirmed cannot have been charged.
            if try payment.decode(String.self, "method") == Self.manualMethod {
                try await db.query("UPDATE payments SET status = 'FAILED', failure_reason = 'order_cancelled', updated_at = now() WHERE id = $1", [paymentId])
                return []
            }
            return try await settleAfterCancellation(paymentId, orderId: orderId, cause: cause, db)
        case "FAILED":
            guard let reason = try payment.decode(String?.self, "failure_reason"), Self.ownFailureReasons.contains(reason) else { return [] }
            return try await settleAfterCancellation(paymentId, orderId: orderId, cause: cause, db)
        default:
            return []
        }
    }

    private func settleAfterCancellation(_ paymentId: UUID, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        switch try await provider.lookupCharge(idempotencyKey: paymentId.uuidString.lowercased()) {
        case .succeeded(let reference):
            try await db.query(
                "UPDATE payments SET status = 'SUCCEEDED', provider_reference = $2, failure_reason = NULL, updated_at = now() WHERE id = $1",
                [paymentId, reference])
            return try await refund(paymentId, orderId: orderId, cause: cause, db)
        case .declined(let code):
            try await db.query("UPDATE payments SET status = 'FAILED', failure_reason = $2, updated_at = now() WHERE id = $1", [paymentId, code])
            return []
        case .notFound:
            try await db.query("UPDATE payments SET status = 'FAILED', failure_reason = 'order_cancelled', updated_at = now() WHERE id = $1", [paymentId])
            return []
        }
    }

    /// Refunds a payment recorded as charged, once: the refund's idempotency key is derived
    /// from the payment id, and the caller holds the payment's row lock.
    private func refund(_ paymentId: UUID, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        let payment = try await db.query(
            "SELECT status, amount_cents, currency, provider_reference FROM payments WHERE id = $1 FOR UPDATE", [paymentId])[0]
        guard try payment.decode(String.self, "status") == "SUCCEEDED" else { return [] }
        let amount = try payment.decode(Int.self, "amount_cents")
        let currency = try payment.decode(String.self, "currency")
        let refundId = PaymentIds.derived("refund:\(paymentId.uuidString.lowercased())")
        let result = try await provider.refund(
            idempotencyKey: refundId.uuidString.lowercased(), orderId: orderId,
            chargeReference: try payment.decode(String?.self, "provider_reference") ?? "", amountCents: amount, currency: currency)
        guard case .succeeded(let reference) = result else { throw TransientFailure("refund of \(paymentId) was refused") }
        try await db.query(
            """
            INSERT INTO refunds (id, payment_id, amount_cents, currency, status, provider_reference, reason)
            VALUES ($1, $2, $3, $4, 'SUCCEEDED', $5, 'order_cancelled') ON CONFLICT (payment_id) DO NOTHING
            """, [refundId, paymentId, amount, currency, reference])
        try await db.query("UPDATE payments SET status = 'REFUNDED', updated_at = now() WHERE id = $1", [paymentId])
        return [try EventEnvelope(type: EventType.paymentRefunded, orderId: orderId,
                                  payload: PaymentRefunded(orderId: orderId, paymentId: paymentId, refundId: refundId, amountCents: amount, currency: currency),
                                  traceparent: cause.traceparent)]
    }

    private enum Outcome { case paymentSucceeded, paymentFailed }

    private func outcome(_ kind: Outcome, _ orderId: UUID, _ paymentId: UUID, reason: String?, cause: EventEnvelope) throws -> EventEnvelope {
        try EventEnvelope(type: kind == .paymentSucceeded ? EventType.paymentSucceeded : EventType.paymentFailed, orderId: orderId,
                          payload: PaymentOutcome(orderId: orderId, paymentId: paymentId, reason: reason), traceparent: cause.traceparent)
    }
}
