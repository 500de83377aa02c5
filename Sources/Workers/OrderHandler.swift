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

    /// The move an event asks of its order.
    package struct Step: Sendable, Equatable {
        package let orderId: UUID
        package let move: OrderStore.Move
    }

    /// A message of a prepared batch: its step (so the answer need not read the payload
    /// again) and where the batch's statement left the order (nil: it did not move).
    package struct Outcome: Sendable {
        package let step: Step
        package let moved: OrderStore.Moved?
    }

    package func handle(_ input: OrderEvent, _ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        guard let step = try Self.step(input, event) else { return [] }
        let moved = try await orders.transition(step.orderId, to: step.move.target, reason: step.move.reason, on: db)
        return try await answer(input, step, moved, cause: event, db)
    }

    /// Moves the batch's orders in one statement (``OrderStore/transitions(_:on:)``) instead of
    /// one round trip per message. An order that two messages of the batch name is not moved
    /// here: its messages go one by one, in arrival order, as single messages do. Returns
    /// each moved message's outcome, by event id.
    package func prepare(_ batch: [(input: OrderEvent, event: EventEnvelope)], in db: PostgresConnection) async throws -> [UUID: Outcome] {
        let steps = try batch.compactMap { item in try Self.step(item.input, item.event).map { (event: item.event, step: $0) } }
        let named = Dictionary(steps.map { ($0.step.orderId, 1) }, uniquingKeysWith: +)
        let alone = steps.filter { named[$0.step.orderId] == 1 }
        let moved = try await orders.transitions(Dictionary(uniqueKeysWithValues: alone.map { ($0.step.orderId, $0.step.move) }), on: db)
        return Dictionary(uniqueKeysWithValues: alone.map { ($0.event.id, Outcome(step: $0.step, moved: moved[$0.step.orderId])) })
    }

    /// Answers a message its batch moved; anything else is handled as a single message.
    package func handle(
        _ input: OrderEvent, _ event: EventEnvelope, prepared: [UUID: Outcome], in db: PostgresConnection
    ) async throws -> [EventEnvelope] {
        guard let outcome = prepared[event.id] else { return try await handle(input, event, in: db) }
        return try await answer(input, outcome.step, outcome.moved, cause: event, db)
    }

    /// The move `input` asks of its order; nil for a refund that does not say how much of
    /// the capture it returned (nothing to move).
    static func step(_ input: OrderEvent, _ event: EventEnvelope) throws -> Step? {
        switch input {
        case .stockReserved:
            return Step(orderId: try event.payload(as: StockOutcome.self).orderId, move: .init(to: .awaitingPayment))
        case .stockRejected:
            return Step(orderId: try event.payload(as: StockOutcome.self).orderId, move: .init(to: .cancelled, reason: .outOfStock))
        case .paymentSucceeded:
            return Step(orderId: try event.payload(as: PaymentOutcome.self).orderId, move: .init(to: .confirmed))
        case .paymentFailed:
            return Step(orderId: try event.payload(as: PaymentOutcome.self).orderId, move: .init(to: .cancelled, reason: .paymentFailed))
        case .paymentRefunded:
            // A refund of a captured order moves it to PARTIALLY_REFUNDED or REFUNDED; a
            // cancelled order's refund changes nothing (the move is conditional).
            let refund = try event.payload(as: PaymentRefunded.self)
            guard let refunded = refund.refundedCents, let captured = refund.capturedCents else { return nil }
            return Step(orderId: refund.orderId, move: .init(to: OrderStatus.afterRefund(refundedCents: refunded, capturedCents: captured)))
        }
    }

    /// The next command once the order moved (or did not): the payment request, the
    /// confirmation, the cancellation, or a refund of a charge that came too late.
    private func answer(
        _ input: OrderEvent, _ step: Step, _ moved: OrderStore.Moved?, cause event: EventEnvelope, _ db: PostgresConnection
    ) async throws -> [EventEnvelope] {
        let orderId = step.orderId
        switch input {
        case .stockReserved:
            guard let order = moved else { return [] }
            return [
                try EventEnvelope(
                    type: .paymentRequested, orderId: orderId,
                    payload: PaymentRequested(
                        orderId: orderId, userId: order.userId, amountCents: order.totalCents, currency: order.currency, paymentMethod: order.paymentMethod),
                    traceparent: event.traceparent)
            ]
        case .stockRejected, .paymentFailed:
            guard let order = moved else { return [] }
            return [
                try EventEnvelope(
                    type: .orderCancelled, orderId: orderId,
                    payload: OrderOutcome(orderId: orderId, userId: order.userId, reason: step.move.reason?.rawValue), traceparent: event.traceparent)
            ]
        case .paymentSucceeded:
            guard let order = moved else {
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
        case .paymentRefunded:
            return []
        }
    }
}
