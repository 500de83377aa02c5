import Domain
import Foundation
import Messaging
import Observability
import Postgres
import Store

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
package struct PaymentHandler: EventHandler {
    package static var role: WorkerRole { .payment }
    /// One message per transaction: each calls the payment provider, and a failed batch's redo would
    /// call it again for the healthy messages.
    package static var batches: Bool { false }
    let provider: any PaymentProvider
    private let payments = PaymentStore()
    private let orders = OrderStore()

    /// Creates the handler over `provider`.
    package init(provider: any PaymentProvider) { self.provider = provider }

    package func handle(_ input: PaymentEvent, _ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        switch input {
        case .paymentRequested: return try await charge(try event.payload(as: PaymentRequested.self), cause: event, db)
        case .orderCancelled, .paymentRefundRequested: return try await refundIfCharged(try event.payload(as: OrderOutcome.self).orderId, cause: event, db)
        }
    }

    private func charge(_ request: PaymentRequested, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        let payment = try await payments.claim(
            PaymentStore.NewPayment(
                id: PaymentIds.paymentId(for: request.orderId), orderId: request.orderId, userId: request.userId, amountCents: request.amountCents,
                currency: request.currency, method: request.paymentMethod, provider: provider.name), on: db)
        let order = try await orders.paymentFacts(request.orderId, on: db)
        let awaitingPayment = order?.status == .awaitingPayment

        switch payment.status {
        case .succeeded:
            // Charged before (this is a redelivery or a re-drive): if the order still waits,
            // its `payment.succeeded` never arrived, so say it again.
            return awaitingPayment ? [try outcome(.paymentSucceeded, payment, reason: nil, request.orderId, cause: cause)] : []
        case .failed:
            if awaitingPayment { return [try outcome(.paymentFailed, payment, reason: payment.failureReason, request.orderId, cause: cause)] }
            // Failed by our own decision, not the provider's: make sure no charge slipped through.
            guard let reason = payment.failureReason, PaymentStatus.ownFailureReasons.contains(reason) else { return [] }
            return try await settleAfterOrderMovedOn(payment, orderId: request.orderId, cause: cause, db)
        case .pending:
            break
        case .refunded:
            return []
        }
        // `manual`: the client confirms through POST /api/v1/payments/confirm, which sends
        // this request again with the card token.
        if request.paymentMethod == PaymentIds.manualMethod { return [] }
        // An order that no longer awaits payment (cancelled or expired) is not charged now;
        // but a worker may have charged it and died before recording that: ask first.
        guard awaitingPayment else { return try await settleAfterOrderMovedOn(payment, orderId: request.orderId, cause: cause, db) }

        let result = try await provider.charge(
            ChargeRequest(
                idempotencyKey: key(payment), orderId: request.orderId,
                amountCents: request.amountCents, currency: request.currency, paymentMethod: request.paymentMethod))
        switch result {
        case .succeeded(let reference):
            try await payments.markSucceeded(payment.id, reference: reference, on: db)
            if let age = order?.ageSeconds { SagaMetrics.step("paid", ageSeconds: age) }
            return [try outcome(.paymentSucceeded, payment, reason: nil, request.orderId, cause: cause)]
        case .declined(let code):
            try await payments.markFailed(payment.id, reason: code, on: db)
            return [try outcome(.paymentFailed, payment, reason: code, request.orderId, cause: cause)]
        }
    }

    /// The order moved on (cancelled, expired) while its payment was not recorded as charged:
    /// asks the provider whether the charge happened anyway. A charge found is recorded and,
    /// the order being cancelled, refunded; otherwise the payment is marked failed.
    private func settleAfterOrderMovedOn(_ payment: PaymentStore.Payment, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws
        -> [EventEnvelope]
    {
        switch try await provider.lookupCharge(idempotencyKey: key(payment)) {
        case .succeeded(let reference):
            try await payments.markSucceeded(payment.id, reference: reference, on: db)
            guard try await orders.status(of: orderId, on: db) == .cancelled else { return [] }
            return try await refund(payment.id, orderId: orderId, cause: cause, db)
        case .declined, .notFound:
            try await payments.markFailed(payment.id, reason: payment.failureReason ?? "order_not_awaiting_payment", onlyIfPending: true, on: db)
            return []
        }
    }

    /// On cancellation: refunds the order's charge, if there is one. A payment that is not
    /// recorded as charged but could have been (the order reached payment) is checked with
    /// the provider first.
    private func refundIfCharged(_ orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        // An order that never reached payment was never charged (no payment.requested was sent).
        guard let order = try await orders.paymentFacts(orderId, on: db), order.reachedPayment else { return [] }
        // The claim waits for a charge in progress on this payment (its uncommitted row holds
        // the key), so a cancellation and a charge never decide about one payment at once.
        let payment = try await payments.claim(
            PaymentStore.NewPayment(
                id: PaymentIds.paymentId(for: orderId), orderId: orderId, userId: order.userId, amountCents: order.totalCents,
                currency: order.currency, method: order.paymentMethod, provider: provider.name), on: db)
        switch payment.status {
        case .succeeded:
            return try await refund(payment.id, orderId: orderId, cause: cause, db)
        case .pending:
            // A manual payment the customer never confirmed cannot have been charged.
            if payment.method == PaymentIds.manualMethod {
                try await payments.markFailed(payment.id, reason: "order_cancelled", on: db)
                return []
            }
            return try await settleAfterCancellation(payment, orderId: orderId, cause: cause, db)
        case .failed:
            guard let reason = payment.failureReason, PaymentStatus.ownFailureReasons.contains(reason) else { return [] }
            return try await settleAfterCancellation(payment, orderId: orderId, cause: cause, db)
        case .refunded:
            return []
        }
    }

    private func settleAfterCancellation(_ payment: PaymentStore.Payment, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws
        -> [EventEnvelope]
    {
        switch try await provider.lookupCharge(idempotencyKey: key(payment)) {
        case .succeeded(let reference):
            try await payments.markSucceeded(payment.id, reference: reference, on: db)
            return try await refund(payment.id, orderId: orderId, cause: cause, db)
        case .declined(let code):
            try await payments.markFailed(payment.id, reason: code, on: db)
            return []
        case .notFound:
            try await payments.markFailed(payment.id, reason: "order_cancelled", on: db)
            return []
        }
    }

    /// Refunds a payment recorded as charged, once: the refund's idempotency key is derived
    /// from the payment id, and the caller holds the payment's row lock.
    private func refund(_ paymentId: UUID, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        guard let payment = try await payments.lock(paymentId, on: db), payment.status == .succeeded else { return [] }
        let refundId = PaymentIds.derived("refund:\(paymentId.uuidString.lowercased())")
        let result = try await provider.refund(
            idempotencyKey: refundId.uuidString.lowercased(), orderId: orderId,
            chargeReference: payment.providerReference ?? "", amountCents: payment.amountCents, currency: payment.currency)
        guard case .succeeded(let reference) = result else { throw TransientFailure("refund of \(paymentId) was refused") }
        try await payments.recordRefund(
            refundId, of: paymentId, amountCents: payment.amountCents, currency: payment.currency,
            reference: reference, reason: "order_cancelled", on: db)
        return [
            try EventEnvelope(
                type: .paymentRefunded, orderId: orderId,
                payload: PaymentRefunded(
                    orderId: orderId, paymentId: paymentId, refundId: refundId, amountCents: payment.amountCents,
                    currency: payment.currency),
                traceparent: cause.traceparent)
        ]
    }

    /// The provider's idempotency key of a payment: its id.
    private func key(_ payment: PaymentStore.Payment) -> String { payment.id.uuidString.lowercased() }

    private func outcome(_ type: EventType, _ payment: PaymentStore.Payment, reason: String?, _ orderId: UUID, cause: EventEnvelope) throws -> EventEnvelope {
        try EventEnvelope(
            type: type, orderId: orderId, payload: PaymentOutcome(orderId: orderId, paymentId: payment.id, reason: reason), traceparent: cause.traceparent)
    }
}
