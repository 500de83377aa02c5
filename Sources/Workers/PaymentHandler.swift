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
public struct PaymentHandler: EventHandler {
    public var consumerName: String { "payment" }
    let provider: any PaymentProvider

    /// Creates the handler over `provider`.
    public init(provider: any PaymentProvider) { self.provider = provider }

    /// The payment method of orders whose client confirms the payment itself.
    public static let manualMethod = PaymentIds.manualMethod

    /// The payment id of an order (see ``PaymentIds``).
    public static func paymentId(for orderId: UUID) -> UUID { PaymentIds.paymentId(for: orderId) }

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
        let current = try await db.query("SELECT status FROM payments WHERE id = $1 FOR NO KEY UPDATE", [paymentId])[0]
        guard try current.decode(String.self, "status") == "PENDING" else { return [] }
        // `manual`: the client confirms through POST /api/v1/payments/confirm, which sends
        // this request again with the card token.
        if request.paymentMethod == Self.manualMethod { return [] }
        // An order cancelled (e.g. expired) before its charge is not charged at all.
        let order = try await db.query("SELECT status, extract(epoch FROM now() - created_at)::float8 AS age_seconds FROM orders WHERE id = $1", [request.orderId]).first
        guard try order?.decode(String.self, "status") == "AWAITING_PAYMENT" else {
            try await db.query("UPDATE payments SET status = 'FAILED', failure_reason = 'order_not_awaiting_payment', updated_at = now() WHERE id = $1", [paymentId])
            return []
        }

        let result = try await provider.charge(ChargeRequest(
            idempotencyKey: paymentId.uuidString.lowercased(), orderId: request.orderId,
            amountCents: request.amountCents, currency: request.currency, paymentMethod: request.paymentMethod))
        switch result {
        case .succeeded(let reference):
            try await db.query("UPDATE payments SET status = 'SUCCEEDED', provider_reference = $2, updated_at = now() WHERE id = $1", [paymentId, reference])
            if let age = try order?.decode(Double.self, "age_seconds") { OrderTransition.recordSagaStep("paid", ageSeconds: age) }
            return [try EventEnvelope(type: EventType.paymentSucceeded, orderId: request.orderId,
                                      payload: PaymentOutcome(orderId: request.orderId, paymentId: paymentId), traceparent: cause.traceparent)]
        case .declined(let code):
            try await db.query("UPDATE payments SET status = 'FAILED', failure_reason = $2, updated_at = now() WHERE id = $1", [paymentId, code])
            return [try EventEnvelope(type: EventType.paymentFailed, orderId: request.orderId,
                                      payload: PaymentOutcome(orderId: request.orderId, paymentId: paymentId, reason: code), traceparent: cause.traceparent)]
        }
    }

    private func refundIfCharged(_ orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        let rows = try await db.query(
            "SELECT id, amount_cents, currency, provider_reference FROM payments WHERE order_id = $1 AND status = 'SUCCEEDED' FOR UPDATE",
            [orderId])
        guard let payment = rows.first else { return [] }
        let paymentId = try payment.decode(UUID.self, "id")
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
}

