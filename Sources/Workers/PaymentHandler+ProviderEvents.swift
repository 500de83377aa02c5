import Domain
import Foundation
import Logging
import Messaging
import Payments
import Postgres
import Store

/// What the provider's webhooks say, applied once: the webhook only names the object; the
/// provider is asked for its state (by the payment's own idempotency key, so only the
/// payment's recorded intent counts), and the payment's row lock orders the webhook with the
/// worker's own charge, cancellation and refund paths, so whichever comes second finds the
/// work done.
extension PaymentHandler {
    func apply(_ received: ProviderEventReceived, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        // Disputes and some charge events carry no metadata: their PaymentIntent names the payment.
        var orderId = received.orderId
        if orderId == nil, let reference = received.paymentIntent { orderId = try await payments.orderId(ofReference: reference, on: db) }
        guard let orderId else { return [] }
        var payment = try await payments.lock(PaymentIds.paymentId(for: orderId), on: db)
        if payment == nil, received.type.hasPrefix("payment_intent."), let order = try await orders.paymentFacts(orderId, on: db), order.reachedPayment {
            // The worker that charged died before its commit and its message was lost (this is
            // the reconciler's repair): the payment's row is made now, as the charge would have.
            payment = try await payments.claim(
                PaymentStore.NewPayment(
                    id: PaymentIds.paymentId(for: orderId), orderId: orderId, userId: order.userId, amountCents: order.totalCents,
                    currency: order.currency, method: order.paymentMethod, provider: provider.name), on: db)
        }
        // Not an Emporium payment, or not this installation's.
        guard let payment else { return [] }
        switch received.type {
        case "charge.dispute.created":
            try await orders.flag(orderId, "disputed", on: db)
            return []
        case "charge.refunded", "charge.refund.updated", "refund.created", "refund.updated":
            return try await recordProviderRefunds(payment, orderId: orderId, cause: cause, db)
        default:
            return try await applyChargeState(payment, orderId: orderId, cause: cause, db)
        }
    }

    /// Brings the payment in line with the provider's state of its charge.
    func applyChargeState(_ payment: PaymentStore.Payment, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        let order = try await orders.paymentFacts(orderId, on: db)
        let awaitingPayment = order?.status == .awaitingPayment
        switch payment.status {
        case .pending:
            switch try await provider.lookupCharge(idempotencyKey: key(payment)) {
            case .succeeded(let reference):
                try await payments.markSucceeded(payment.id, reference: reference, on: db)
                if awaitingPayment { return [try outcome(.paymentSucceeded, payment, reason: nil, orderId, cause: cause)] }
                return order?.status == .cancelled ? try await refundRemainder(payment.id, orderId: orderId, cause: cause, db) : []
            case .authorized(let reference):
                try await payments.markAuthorized(payment.id, reference: reference, on: db)
                if awaitingPayment { return [try outcome(.paymentSucceeded, payment, reason: nil, orderId, cause: cause)] }
                if order?.status == .cancelled { try await release(payment.id, reference: reference, reason: "order_cancelled", db) }
                return []
            case .declined(let code):
                guard awaitingPayment else { return [] }
                try await payments.markFailed(payment.id, reason: code, on: db)
                return [try outcome(.paymentFailed, payment, reason: code, orderId, cause: cause)]
            case .undecided, .notFound:
                return []
            }
        case .failed:
            guard let reason = payment.failureReason, PaymentStatus.ownFailureReasons.contains(reason) else { return [] }
            return try await settleAfterOrderMovedOn(payment, orderId: orderId, cause: cause, db)
        case .authorized:
            // Captured outside Emporium (e.g. in the provider's dashboard): record it.
            if case .succeeded(let reference) = try await provider.lookupCharge(idempotencyKey: key(payment)) {
                try await payments.markSucceeded(payment.id, reference: reference, on: db)
            }
            return []
        case .succeeded, .voided, .partiallyRefunded, .refunded:
            return []
        }
    }

    /// Records the refunds the provider holds on the payment's charge that Emporium has not
    /// recorded: an admin's refund whose worker died after the provider made it, or one made in
    /// the provider's dashboard.
    func recordProviderRefunds(_ payment: PaymentStore.Payment, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws
        -> [EventEnvelope]
    {
        guard payment.status.isCaptured, let reference = payment.providerReference else { return [] }
        let known = try await payments.refundReferences(of: payment.id, on: db)
        var events: [EventEnvelope] = []
        for found in try await provider.refunds(reference: reference) where !known.contains(found.reference) {
            if let refundId = found.refundId, let ours = try await payments.lockRefund(refundId, on: db) {
                // Emporium's own refund, made at the provider but not recorded here.
                guard ours.status == .pending else { continue }
                let totals = try await payments.completeRefund(ours, reference: found.reference, on: db)
                events.append(
                    try refunded(
                        orderId: orderId, paymentId: payment.id, refundId: ours.id, amountCents: ours.amountCents, ours.currency, totals,
                        restock: ours.restock ? ours.lines : nil, cause))
            } else {
                let refundId = found.refundId ?? PaymentIds.derived("provider-refund:\(found.reference)")
                guard
                    let totals = try await payments.recordRefund(
                        refundId, of: payment.id, orderId: orderId, amountCents: found.amountCents, currency: payment.currency, reference: found.reference,
                        reason: "made_at_provider", on: db)
                else { continue }
                events.append(
                    try refunded(
                        orderId: orderId, paymentId: payment.id, refundId: refundId, amountCents: found.amountCents, payment.currency, totals, restock: nil,
                        cause))
            }
        }
        return events
    }
}
