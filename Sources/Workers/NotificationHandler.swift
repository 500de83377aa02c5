import Domain
import Foundation
import Messaging
import Postgres
import Store

/// Tells customers about confirmations, cancellations and refunds through a channel, from
/// templates (one notification per event and channel), and queues the merchant webhook
/// deliveries of every event merchants may receive (``WebhookDispatcher`` sends them).
package struct NotificationHandler: EventHandler {
    package static var role: WorkerRole { .notification }
    /// A customer's notification through a channel that calls out (a mail relay) has a
    /// transaction of its own: a failed batch's redo would mail the healthy messages again.
    /// Through a channel that only records, it shares one, as the events merchants alone hear
    /// of (which only queue webhook rows) always do.
    package func batches(_ input: NotificationEvent) -> Bool {
        switch input {
        case .orderConfirmed, .orderCancelled, .paymentRefunded, .orderShipped, .orderDelivered: !channel.callsOut
        case .orderPlaced, .paymentSucceeded, .paymentFailed, .refundRequested, .webhookDelivery: true
        }
    }
    /// Nobody waits on a notification: below saturation a short batch may wait for company
    /// (a mail never does: it does not share a transaction).
    package func mayWait(_ input: NotificationEvent) -> Bool { true }
    let channel: any NotificationChannel
    let templates: NotificationTemplates
    private let orders = OrderStore()
    private let payments = PaymentStore()
    private let webhooks = WebhookStore()

    /// Creates the handler sending through `channel`.
    package init(channel: any NotificationChannel, templates: NotificationTemplates) {
        self.channel = channel
        self.templates = templates
    }

    /// What a customer is told of an event: the template, the order, and the values the
    /// event itself supplies (the order's facts are read from the database).
    package struct Notice: Sendable, Equatable {
        package let template: String
        package let orderId: UUID
        package let values: [String: String]
    }

    package func handle(_ input: NotificationEvent, _ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        try await handle(input, event, facts: [:], subscribed: nil, db)
    }

    /// What a notification batch reads once, in one round trip: the facts of every order
    /// whose customer it tells something, and the patterns enabled endpoints subscribe to.
    package struct Prepared: Sendable {
        /// The orders' facts, by order.
        package let facts: [UUID: OrderStore.NotificationFacts]
        /// The patterns enabled endpoints subscribe to; nil when not read (a single message,
        /// whose delivery statement chooses the endpoints itself).
        package let subscribed: Set<String>?
    }

    /// Reads the facts of every order whose customer the batch tells something in one
    /// statement, instead of one read per message, and with it the patterns merchants
    /// subscribe to: a merchant event that no enabled endpoint receives (most of them, in a
    /// shop without webhooks) then queues nothing. An endpoint enabled while the batch runs
    /// receives the events handled after it, as it would a moment later anyway.
    package func prepare(_ batch: [(input: NotificationEvent, event: EventEnvelope)], in db: PostgresConnection) async throws -> Prepared {
        let orderIds = Array(Set(try batch.compactMap { try Self.notice($0.input, $0.event)?.orderId }))
        var reads = [WebhookStore.subscribedPatternsStatement]
        if !orderIds.isEmpty { reads.append(OrderStore.notificationFactsStatement(of: orderIds)) }
        let answers = try await db.queries(reads)
        return Prepared(
            facts: orderIds.isEmpty ? [:] : try OrderStore.notificationFacts(from: answers[1]),
            subscribed: try WebhookStore.subscribedPatterns(from: answers[0]))
    }

    /// Handles a message of a prepared batch with what the batch read.
    package func handle(
        _ input: NotificationEvent, _ event: EventEnvelope, prepared: Prepared, in db: PostgresConnection
    ) async throws -> [EventEnvelope] {
        try await handle(input, event, facts: prepared.facts, subscribed: prepared.subscribed, db)
    }

    /// The customer's notice of `input`; nil for the events only merchants hear of (customers
    /// are told at confirmation or cancellation, not at placement or payment).
    static func notice(_ input: NotificationEvent, _ event: EventEnvelope) throws -> Notice? {
        switch input {
        case .orderConfirmed:
            return Notice(template: "order_confirmed", orderId: try event.payload(as: OrderOutcome.self).orderId, values: [:])
        case .orderCancelled:
            let outcome = try event.payload(as: OrderOutcome.self)
            return Notice(
                template: "order_cancelled", orderId: outcome.orderId,
                values: ["reason": (outcome.reason ?? "cancelled").replacingOccurrences(of: "_", with: " ")])
        case .orderShipped:
            return Notice(template: "order_shipped", orderId: try event.payload(as: OrderOutcome.self).orderId, values: [:])
        case .orderDelivered:
            return Notice(template: "order_delivered", orderId: try event.payload(as: OrderOutcome.self).orderId, values: [:])
        case .paymentRefunded:
            let refund = try event.payload(as: PaymentRefunded.self)
            return Notice(template: "payment_refunded", orderId: refund.orderId, values: ["amount": Money.format(refund.amountCents)])
        case .orderPlaced, .paymentSucceeded, .paymentFailed, .refundRequested, .webhookDelivery:
            return nil
        }
    }

    /// Queues the merchants' webhook deliveries of the event and tells the customer, with
    /// the order's facts from `facts` when the batch read them (else read here). With
    /// `subscribed` (the batch's read of the endpoints' patterns), an event none of them
    /// receives queues nothing.
    private func handle(
        _ input: NotificationEvent, _ event: EventEnvelope, facts: [UUID: OrderStore.NotificationFacts], subscribed: Set<String>?,
        _ db: PostgresConnection
    ) async throws -> [EventEnvelope] {
        if input == .webhookDelivery {
            // A given-up delivery's dead letter, replayed: it is due again, with fresh attempts.
            let request = try event.payload(as: WebhookDeliveryRequested.self)
            _ = try await webhooks.redeliver(request.deliveryId, endpointId: request.endpointId, on: db)
            return []
        }
        if let type = event.eventType, MerchantWebhooks.eventTypes.contains(type) {
            let patterns = MerchantWebhooks.patterns(receiving: type.rawValue)
            if subscribed.map({ !$0.isDisjoint(with: patterns) }) ?? true {
                let body = String(decoding: try JSONValueEncoder().encode(MerchantEventBody(event)).jsonBytes, as: UTF8.self)
                try await webhooks.enqueue(eventId: event.id, eventType: type.rawValue, body: body, patterns: patterns, on: db)
            }
        }
        guard let notice = try Self.notice(input, event) else { return [] }
        var values: [String: Any] = notice.values
        if input == .orderCancelled { values["refunded"] = try await payments.wasCharged(orderId: notice.orderId, on: db) }
        var read = facts[notice.orderId]
        if read == nil { read = try await orders.notificationFacts(notice.orderId, on: db) }
        guard let order = read else { throw PermanentFailure("order \(notice.orderId) does not exist") }
        values["first_name"] = order.firstName
        values["order_number"] = order.orderNumber
        values["total"] = Money.format(order.totalCents)
        values["currency"] = order.currency
        let body = try templates.render(notice.template, values)
        try await channel.deliver(
            OutgoingNotification(
                id: UUID.random(), eventId: event.id, userId: order.userId, orderId: notice.orderId, recipient: order.email, template: notice.template,
                body: body),
            on: db)
        return []
    }
}

/// The JSON a merchant webhook carries: the event's id (receivers dedupe on it), type, time,
/// order and data.
struct MerchantEventBody: Encodable {
    let id: UUID
    let type: String
    let createdAt: Date
    let orderId: UUID?
    let data: JSONValue

    init(_ event: EventEnvelope) {
        id = event.id
        type = event.type
        createdAt = event.occurredAt
        orderId = event.orderId
        data = event.data
    }
}
