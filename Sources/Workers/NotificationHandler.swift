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

    package func handle(_ input: NotificationEvent, _ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        if input == .webhookDelivery {
            // A given-up delivery's dead letter, replayed: it is due again, with fresh attempts.
            let request = try event.payload(as: WebhookDeliveryRequested.self)
            _ = try await webhooks.redeliver(request.deliveryId, endpointId: request.endpointId, on: db)
            return []
        }
        if let type = event.eventType, MerchantWebhooks.eventTypes.contains(type) {
            let body = String(decoding: try JSONValueEncoder().encode(MerchantEventBody(event)).jsonBytes, as: UTF8.self)
            try await webhooks.enqueue(
                eventId: event.id, eventType: type.rawValue, body: body, patterns: MerchantWebhooks.patterns(receiving: type.rawValue), on: db)
        }
        let template: String
        var values: [String: Any] = [:]
        let orderId: UUID
        switch input {
        case .orderConfirmed:
            template = "order_confirmed"
            orderId = try event.payload(as: OrderOutcome.self).orderId
        case .orderCancelled:
            template = "order_cancelled"
            let outcome = try event.payload(as: OrderOutcome.self)
            orderId = outcome.orderId
            values["reason"] = (outcome.reason ?? "cancelled").replacingOccurrences(of: "_", with: " ")
            values["refunded"] = try await payments.wasCharged(orderId: orderId, on: db)
        case .orderShipped:
            template = "order_shipped"
            orderId = try event.payload(as: OrderOutcome.self).orderId
        case .orderDelivered:
            template = "order_delivered"
            orderId = try event.payload(as: OrderOutcome.self).orderId
        case .paymentRefunded:
            template = "payment_refunded"
            let refund = try event.payload(as: PaymentRefunded.self)
            orderId = refund.orderId
            values["amount"] = Money.format(refund.amountCents)
        case .orderPlaced, .paymentSucceeded, .paymentFailed, .refundRequested, .webhookDelivery:
            // Merchants hear of these (above); customers are told at confirmation or cancellation.
            return []
        }
        guard let order = try await orders.notificationFacts(orderId, on: db) else { throw PermanentFailure("order \(orderId) does not exist") }
        values["first_name"] = order.firstName
        values["order_number"] = order.orderNumber
        values["total"] = Money.format(order.totalCents)
        values["currency"] = order.currency
        let body = try templates.render(template, values)
        try await channel.deliver(
            OutgoingNotification(id: UUID(), eventId: event.id, userId: order.userId, orderId: orderId, recipient: order.email, template: template, body: body),
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
