import Domain
import Foundation
import Messaging
import Payments
import Postgres
import Store

/// Cancellations, captures and refunds: what happens to a payment after its charge.
extension PaymentHandler {
    /// On cancellation: refunds the order's charge or releases its authorisation, if there is
    /// one. A payment that is not recorded as charged but could have been (the order reached
    /// payment) is checked with the provider first.
    func settleCancelled(_ orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        // An order that never reached payment was never charged (no payment.requested was sent).
        guard let order = try await orders.paymentFacts(orderId, on: db), order.reachedPayment else { return [] }
        // The claim waits for a charge in progress on this payment (its uncommitted row holds
        // the key), so a cancellation and a charge never decide about one payment at once.
        let payment = try await payments.claim(
            PaymentStore.NewPayment(
                id: PaymentIds.paymentId(for: orderId), orderId: orderId, userId: order.userId, amountCents: order.totalCents,
                currency: order.currency, method: order.paymentMethod, provider: provider.name), on: db)
        switch payment.status {
        case .succeeded, .partiallyRefunded:
            return try await refundRemainder(payment.id, orderId: orderId, cause: cause, db)
        case .authorized:
            try await release(payment.id, reference: payment.providerReference ?? "", reason: "order_cancelled", db)
            return []
        case .pending:
            // Also a client-confirmed (`manual`) payment: with Stripe the customer may have paid
            // in the browser and the webhook not be applied yet, so the provider is asked.
            return try await settleAfterCancellation(payment, orderId: orderId, cause: cause, db)
        case .failed:
            guard let reason = payment.failureReason, PaymentStatus.ownFailureReasons.contains(reason) else { return [] }
            return try await settleAfterCancellation(payment, orderId: orderId, cause: cause, db)
        case .voided, .refunded:
            return []
        }
    }

    private func settleAfterCancellation(_ payment: PaymentStore.Payment, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws
        -> [EventEnvelope]
    {
        switch try await provider.lookupCharge(idempotencyKey: key(payment)) {
        case .succeeded(let reference):
            try await payments.markSucceeded(payment.id, reference: reference, on: db)
            return try await refundRemainder(payment.id, orderId: orderId, cause: cause, db)
        case .authorized(let reference):
            try await release(payment.id, reference: reference, reason: "order_cancelled", db)
            return []
        case .undecided(let reference):
            return try await abandon(payment, reference: reference, reason: "order_cancelled", orderId: orderId, cause: cause, db)
        case .declined(let code):
            try await payments.markFailed(payment.id, reason: code, on: db)
            return []
        case .notFound:
            try await payments.markFailed(payment.id, reason: "order_cancelled", on: db)
            return []
        }
    }

    /// Releases an authorisation that will not be captured and records the payment VOIDED.
    func release(_ paymentId: UUID, reference: String, reason: String, _ db: PostgresConnection) async throws {
        try await provider.releaseAuthorization(reference: reference, idempotencyKey: "release:\(paymentId.uuidString.lowercased())")
        try await payments.markVoided(paymentId, reason: reason, on: db)
    }

    /// On shipping: captures an authorised payment. An authorisation that lapsed (Stripe
    /// releases them after about 7 days) cannot be captured: the payment is VOIDED and the
    /// order flagged `authorization_expired` for an admin (the goods have left).
    func capture(_ orderId: UUID, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        guard let payment = try await payments.lock(PaymentIds.paymentId(for: orderId), on: db), payment.status == .authorized,
            let reference = payment.providerReference
        else { return [] }
        switch try await provider.capture(reference: reference, idempotencyKey: "capture:\(key(payment))") {
        case .succeeded(let captured), .authorized(let captured):
            try await payments.markSucceeded(payment.id, reference: captured, on: db)
        case .declined(let code):
            try await payments.markVoided(payment.id, reason: code, on: db)
            try await orders.flag(orderId, "authorization_expired", on: db)
        }
        return []
    }

    /// Refunds what is left of a captured payment (a cancelled order's charge), once: the
    /// refund's idempotency key is derived from the payment id, and the caller holds the
    /// payment's row lock.
    func refundRemainder(_ paymentId: UUID, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        guard let payment = try await payments.lock(paymentId, on: db), payment.status.isCaptured,
            let remainder = Optional(payment.amountCents - payment.refundedCents), remainder > 0
        else { return [] }
        let refundId = PaymentIds.cancellationRefundId(for: paymentId)
        let result = try await provider.refund(
            RefundRequest(
                idempotencyKey: refundId.uuidString.lowercased(), orderId: orderId, chargeReference: payment.providerReference ?? "",
                amountCents: remainder, currency: payment.currency))
        guard case .succeeded(let reference) = result else { throw TransientFailure("refund of \(paymentId) was refused") }
        guard
            let totals = try await payments.recordRefund(
                refundId, of: paymentId, orderId: orderId, amountCents: remainder, currency: payment.currency, reference: reference,
                reason: "order_cancelled", on: db)
        else { return [] }
        return [try refunded(orderId: orderId, paymentId: paymentId, refundId: refundId, amountCents: remainder, payment.currency, totals, restock: nil, cause)]
    }

    /// Carries out an admin's refund: once (the refund's row is locked and must still be
    /// PENDING), through the provider under the refund's id.
    func carryOut(_ request: RefundRequested, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        guard let payment = try await payments.lock(PaymentIds.paymentId(for: request.orderId), on: db),
            let refund = try await payments.lockRefund(request.refundId, on: db), refund.status == .pending
        else { return [] }
        guard payment.status.isCaptured, let reference = payment.providerReference,
            payment.refundedCents + refund.amountCents <= payment.amountCents
        else {
            try await payments.failRefund(refund.id, reason: "payment_not_refundable", on: db)
            return []
        }
        let result = try await provider.refund(
            RefundRequest(
                idempotencyKey: refund.id.uuidString.lowercased(), orderId: refund.orderId, chargeReference: reference,
                amountCents: refund.amountCents, currency: refund.currency))
        switch result {
        case .succeeded(let made), .authorized(let made):
            let totals = try await payments.completeRefund(refund, reference: made, on: db)
            return [
                try refunded(
                    orderId: refund.orderId, paymentId: payment.id, refundId: refund.id, amountCents: refund.amountCents, refund.currency, totals,
                    restock: refund.restock ? refund.lines : nil, cause)
            ]
        case .declined(let code):
            try await payments.failRefund(refund.id, reason: code, on: db)
            return []
        }
    }

    /// The `payment.refunded` event of a recorded refund.
    func refunded(
        orderId: UUID, paymentId: UUID, refundId: UUID, amountCents: Int, _ currency: String, _ totals: PaymentStore.RefundTotals,
        restock: [OrderLine]?, _ cause: EventEnvelope
    ) throws -> EventEnvelope {
        try EventEnvelope(
            type: .paymentRefunded, orderId: orderId,
            payload: PaymentRefunded(
                orderId: orderId, paymentId: paymentId, refundId: refundId, amountCents: amountCents, currency: currency,
                refundedCents: totals.refundedCents, capturedCents: totals.amountCents, restock: restock),
            traceparent: cause.traceparent)
    }
}
