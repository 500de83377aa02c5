import Domain
import Foundation
import Messaging
import Payments
import Postgres
import Store

/// What a batch's ``PaymentHandler/prepare(_:in:)`` did for one charge request.
package struct PreparedCharge: Sendable {
    /// The request, decoded once.
    let request: PaymentRequested
    /// The payment, claimed and locked by the batch's transaction.
    let payment: PaymentStore.Payment
    /// The order's facts; nil when there is no such order.
    let order: OrderStore.PaymentFacts?
    /// The provider's answer, when the charge was due and made; nil when it was not due.
    let charged: ProviderResult?
}

extension PaymentHandler {
    /// Takes a batch's charge requests together: claims and locks their payments in one round
    /// trip, reads their orders in one statement, and charges those that are due concurrently,
    /// each under its payment's idempotency key. Each message's ``handle(_:_:prepared:in:)``
    /// then records its answer as a message alone would. Keyed by event id; a second request
    /// for an order already in the batch is left to the one-message path, which sees what the
    /// first recorded.
    package func prepare(_ batch: [(input: PaymentEvent, event: EventEnvelope)], in db: PostgresConnection) async throws -> [UUID: PreparedCharge] {
        // Every payload is read before anything is charged: an unreadable one fails the batch
        // (and is dead-lettered alone by the redo) while no provider call has been made.
        var requests: [(eventId: UUID, request: PaymentRequested)] = []
        var orderIds = Set<UUID>()
        for item in batch where item.input == .paymentRequested {
            let request = try item.event.payload(as: PaymentRequested.self)
            guard orderIds.insert(request.orderId).inserted else { continue }
            requests.append((item.event.id, request))
        }
        guard !requests.isEmpty else { return [:] }
        let claimed = try await payments.claim(requests.map { newPayment($0.request) }, on: db)
        let facts = try await orders.paymentFacts(requests.map(\.request.orderId), on: db)

        let provider = self.provider
        let outcomes = await withTaskGroup(of: (UUID, Result<PreparedCharge, any Error>).self) { group in
            for (eventId, request) in requests {
                guard let payment = claimed[PaymentIds.paymentId(for: request.orderId)] else { continue }
                let order = facts[request.orderId]
                let charge = Self.chargeIsDue(request, payment, order) ? chargeRequest(request, payment) : nil
                group.addTask {
                    do {
                        var charged: ProviderResult?
                        if let charge { charged = try await provider.charge(charge) }
                        return (eventId, .success(PreparedCharge(request: request, payment: payment, order: order, charged: charged)))
                    } catch {
                        return (eventId, .failure(error))
                    }
                }
            }
            return await group.reduce(into: [(UUID, Result<PreparedCharge, any Error>)]()) { $0.append($1) }
        }
        // Every call has finished (none is cut off halfway) before a failure fails the batch.
        var prepared: [UUID: PreparedCharge] = [:]
        for (eventId, outcome) in outcomes { prepared[eventId] = try outcome.get() }
        return prepared
    }

    /// Decides one charge request of a prepared batch with what ``prepare(_:in:)`` found and
    /// did; any other message is handled alone.
    package func handle(_ input: PaymentEvent, _ event: EventEnvelope, prepared: [UUID: PreparedCharge], in db: PostgresConnection) async throws
        -> [EventEnvelope]
    {
        guard let charge = prepared[event.id] else { return try await handle(input, event, in: db) }
        return try await self.charge(charge.request, cause: event, db, prepared: charge)
    }

    /// Whether ``charge(_:cause:_:prepared:)`` would call the provider for this request: the
    /// payment is pending, the method is charged by the worker (not confirmed by the client)
    /// and the order awaits payment. Exactly its guards, so a batch charges nothing that
    /// one message alone would not.
    static func chargeIsDue(_ request: PaymentRequested, _ payment: PaymentStore.Payment, _ order: OrderStore.PaymentFacts?) -> Bool {
        payment.status == .pending && request.paymentMethod != PaymentIds.manualMethod && order?.status == .awaitingPayment
    }
}
