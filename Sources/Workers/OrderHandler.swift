import Domain
import Foundation
import Messaging
import Postgres
import Store

/// The saga coordinator: moves each order through its states with conditional updates and
/// emits the next command. An event that finds the order elsewhere changes nothing.
package struct OrderHandler: EventHandler {
    package static var role: WorkerRole { .order }
    private let orders = OrderStore()

    /// Creates the handler.
    package init() {}

    package func handle(_ input: OrderEvent, _ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        switch input {
        case .stockReserved:
            let orderId = try event.payload(as: StockOutcome.self).orderId
            guard let order = try await orders.transition(orderId, to: .awaitingPayment, on: db) else { return [] }
            return [
                try EventEnvelope(
                    type: .paymentRequested, orderId: orderId,
                    payload: PaymentRequested(
                        orderId: orderId, userId: order.userId, amountCents: order.totalCents, currency: order.currency, paymentMethod: order.paymentMethod),
                    traceparent: event.traceparent)
            ]
        case .stockRejected:
            return try await cancel(try event.payload(as: StockOutcome.self).orderId, reason: .outOfStock, cause: event, db)
        case .paymentSucceeded:
            let orderId = try event.payload(as: PaymentOutcome.self).orderId
            guard let order = try await orders.transition(orderId, to: .confirmed, on: db) else {
                // Charged after the order was cancelled (e.g. it expired meanwhile): refund.
                guard try await orders.status(of: orderId, on: db) == .cancelled,
                    let owner = try await orders.ownerAndTrace(orderId, owner: nil, on: db)
                else { return [] }
                return [
                    try EventEnvelope(
                        type: .paymentRefundRequested, orderId: orderId,
                        payload: OrderOutcome(orderId: orderId, userId: owner.userId, reason: "cancelled_before_charge"),
                        traceparent: event.traceparent)
                ]
            }
            return [
                try EventEnvelope(
                    type: .orderConfirmed, orderId: orderId, payload: OrderOutcome(orderId: orderId, userId: order.userId), traceparent: event.traceparent)
            ]
        case .paymentFailed:
            return try await cancel(try event.payload(as: PaymentOutcome.self).orderId, reason: .paymentFailed, cause: event, db)
        case .paymentRefunded:
            // A refund of a captured order moves it to PARTIALLY_REFUNDED or REFUNDED; a
            // cancelled order's refund changes nothing (the move is conditional).
            let refund = try event.payload(as: PaymentRefunded.self)
            guard let refunded = refund.refundedCents, let captured = refund.capturedCents else { return [] }
            _ = try await orders.transition(refund.orderId, to: OrderStatus.afterRefund(refundedCents: refunded, capturedCents: captured), on: db)
            return []
        }
    }

    private func cancel(_ orderId: UUID, reason: CancellationReason, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        guard let order = try await orders.transition(orderId, to: .cancelled, reason: reason, on: db) else { return [] }
        return [
            try EventEnvelope(
                type: .orderCancelled, orderId: orderId,
                payload: OrderOutcome(orderId: orderId, userId: order.userId, reason: reason.rawValue), traceparent: cause.traceparent)
        ]
    }
}
