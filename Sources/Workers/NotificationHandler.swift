import Domain
import Foundation
import Messaging
import Postgres
import Store

/// Tells customers about confirmations, cancellations and refunds through a channel,
/// from templates. One notification per event and channel.
package struct NotificationHandler: EventHandler {
    package static var role: WorkerRole { .notification }
    /// One message per transaction: each calls the mail relay, and a failed batch's redo would
    /// call it again for the healthy messages.
    package static var batches: Bool { false }
    let channel: any NotificationChannel
    let templates: NotificationTemplates
    private let orders = OrderStore()
    private let payments = PaymentStore()

    /// Creates the handler sending through `channel`.
    package init(channel: any NotificationChannel, templates: NotificationTemplates) {
        self.channel = channel
        self.templates = templates
    }

    package func handle(_ input: NotificationEvent, _ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
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
