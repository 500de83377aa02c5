import Domain
import Foundation
import Messaging
import Observability
import Payments
import Postgres
import Store

/// Charges requested payments, captures them when orders ship, refunds them (in full on
/// cancellation, in part on an admin's request) and applies what the provider's webhooks say.
///
/// The payment id is derived from the order id, and it is the provider's idempotency key:
/// if the worker dies after the charge but before its commit, the redelivered request
/// computes the same key and the provider answers with the first charge.
///
/// Money is reconciled with the provider: before the worker concludes that an order that no
/// longer awaits payment needs no charge and no refund, it asks the provider (by that key)
/// whether a charge exists, and refunds it if the order was cancelled. Every path that decides
/// about a payment (a charge request, a cancellation, a capture, a refund, a webhook) first
/// locks the payment's row, so they serialise and each effect happens once.
package struct PaymentHandler: EventHandler {
    package static var role: WorkerRole { .payment }
    /// Charge requests share transactions (``prepare(_:in:)`` charges a batch's at once): a
    /// failed batch's redo calls the provider again for its healthy requests, under the same
    /// idempotency keys, and the provider answers with the first charge. The rarer messages
    /// (cancellations, captures, refunds, webhooks) go one per transaction, as their
    /// provider calls are several and depend on each other.
    package func batches(_ input: PaymentEvent) -> Bool { input == .paymentRequested }
    let provider: any PaymentProvider
    let payments = PaymentStore()
    let orders = OrderStore()

    /// Creates the handler over `provider`.
    package init(provider: any PaymentProvider) { self.provider = provider }

    package func handle(_ input: PaymentEvent, _ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        switch input {
        case .paymentRequested: return try await charge(try event.payload(as: PaymentRequested.self), cause: event, db)
        case .orderCancelled, .paymentRefundRequested: return try await settleCancelled(try event.payload(as: OrderOutcome.self).orderId, cause: event, db)
        case .orderShipped: return try await capture(try event.payload(as: OrderOutcome.self).orderId, db)
        case .refundRequested: return try await carryOut(try event.payload(as: RefundRequested.self), cause: event, db)
        case .providerEventReceived: return try await apply(try event.payload(as: ProviderEventReceived.self), cause: event, db)
        }
    }

    /// Decides a charge request; `prepared`, from a batch's ``prepare(_:in:)``, holds the payment
    /// it claimed, the order's facts and the provider's answer if it charged, so that nothing
    /// is read or charged twice.
    func charge(_ request: PaymentRequested, cause: EventEnvelope, _ db: PostgresConnection, prepared: PreparedCharge? = nil) async throws
        -> [EventEnvelope]
    {
        let payment: PaymentStore.Payment
        let order: OrderStore.PaymentFacts?
        if let prepared {
            (payment, order) = (prepared.payment, prepared.order)
        } else {
            payment = try await payments.claim(newPayment(request), on: db)
            order = try await orders.paymentFacts(request.orderId, on: db)
        }
        let awaitingPayment = order?.status == .awaitingPayment

        switch payment.status {
        case .succeeded, .authorized:
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
        case .voided, .partiallyRefunded, .refunded:
            return []
        }
        // `manual`: the client confirms through POST /api/v1/payments/confirm (the fake) or with
        // the provider in the browser (Stripe, which tells Emporium by webhook).
        if request.paymentMethod == PaymentIds.manualMethod { return [] }
        // An order that no longer awaits payment (cancelled or expired) is not charged now;
        // but a worker may have charged it and died before recording that: ask first.
        guard awaitingPayment else { return try await settleAfterOrderMovedOn(payment, orderId: request.orderId, cause: cause, db) }

        let result: ProviderResult
        if let charged = prepared?.charged {
            result = charged
        } else {
            result = try await provider.charge(chargeRequest(request, payment))
        }
        switch result {
        case .succeeded(let reference):
            try await payments.markSucceeded(payment.id, reference: reference, on: db)
        case .authorized(let reference):
            try await payments.markAuthorized(payment.id, reference: reference, on: db)
        case .declined(let code):
            try await payments.markFailed(payment.id, reason: code, on: db)
            return [try outcome(.paymentFailed, payment, reason: code, request.orderId, cause: cause)]
        }
        if let age = order?.ageSeconds { SagaMetrics.step("paid", ageSeconds: age) }
        return [try outcome(.paymentSucceeded, payment, reason: nil, request.orderId, cause: cause)]
    }

    /// The order moved on (cancelled, expired) while its payment was not recorded as charged:
    /// asks the provider whether the charge happened anyway. A charge found is recorded and,
    /// the order being cancelled, refunded (an authorisation released); otherwise the payment
    /// is marked failed.
    func settleAfterOrderMovedOn(_ payment: PaymentStore.Payment, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection) async throws
        -> [EventEnvelope]
    {
        switch try await provider.lookupCharge(idempotencyKey: key(payment)) {
        case .succeeded(let reference):
            try await payments.markSucceeded(payment.id, reference: reference, on: db)
            guard try await orders.status(of: orderId, on: db) == .cancelled else { return [] }
            return try await refundRemainder(payment.id, orderId: orderId, cause: cause, db)
        case .authorized(let reference):
            try await payments.markAuthorized(payment.id, reference: reference, on: db)
            guard try await orders.status(of: orderId, on: db) == .cancelled else { return [] }
            try await release(payment.id, reference: reference, reason: "order_cancelled", db)
            return []
        case .undecided(let reference):
            return try await abandon(
                payment, reference: reference, reason: payment.failureReason ?? "order_not_awaiting_payment", orderId: orderId, cause: cause, db)
        case .declined, .notFound:
            try await payments.markFailed(payment.id, reason: payment.failureReason ?? "order_not_awaiting_payment", onlyIfPending: true, on: db)
            return []
        }
    }

    /// A charge still being decided (the customer's bank authenticating it) for an order that
    /// no longer wants it: releases it, then reads it again, since it may have completed in
    /// between (then it is refunded).
    func abandon(_ payment: PaymentStore.Payment, reference: String, reason: String, orderId: UUID, cause: EventEnvelope, _ db: PostgresConnection)
        async throws -> [EventEnvelope]
    {
        try await provider.releaseAuthorization(reference: reference, idempotencyKey: "release:\(key(payment))")
        if case .succeeded(let charged) = try await provider.lookupCharge(idempotencyKey: key(payment)) {
            try await payments.markSucceeded(payment.id, reference: charged, on: db)
            return try await refundRemainder(payment.id, orderId: orderId, cause: cause, db)
        }
        try await payments.markFailed(payment.id, reason: reason, on: db)
        return []
    }

    /// The payment row a charge request creates.
    func newPayment(_ request: PaymentRequested) -> PaymentStore.NewPayment {
        PaymentStore.NewPayment(
            id: PaymentIds.paymentId(for: request.orderId), orderId: request.orderId, userId: request.userId, amountCents: request.amountCents,
            currency: request.currency, method: request.paymentMethod, provider: provider.name)
    }

    /// What the provider is asked to charge for `request`, under the payment's idempotency key.
    func chargeRequest(_ request: PaymentRequested, _ payment: PaymentStore.Payment) -> ChargeRequest {
        ChargeRequest(
            idempotencyKey: key(payment), orderId: request.orderId, amountCents: request.amountCents, currency: request.currency,
            paymentMethod: request.paymentMethod)
    }

    /// The provider's idempotency key of a payment: its id.
    func key(_ payment: PaymentStore.Payment) -> String { payment.id.uuidString.lowercased() }

    func outcome(_ type: EventType, _ payment: PaymentStore.Payment, reason: String?, _ orderId: UUID, cause: EventEnvelope) throws -> EventEnvelope {
        try EventEnvelope(
            type: type, orderId: orderId, payload: PaymentOutcome(orderId: orderId, paymentId: payment.id, reason: reason), traceparent: cause.traceparent)
    }
}
