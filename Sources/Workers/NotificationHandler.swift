import Domain
import Foundation
import Messaging
import Postgres

/// Tells customers about confirmations, cancellations and refunds through a channel,
/// from templates. One notification per event and channel.
public struct NotificationHandler: EventHandler {
    public var consumerName: String { "notification" }
    let channel: any NotificationChannel
    let templates: NotificationTemplates

    /// Creates the handler sending through `channel`.
    public init(channel: any NotificationChannel, templates: NotificationTemplates) {
        self.channel = channel
        self.templates = templates
    }

    public func handle(_ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        let template: String
        var values: [String: Any] = [:]
        let orderId: UUID
        switch event.type {
        case EventType.orderConfirmed:
            template = "order_confirmed"
            orderId = try event.payload(as: OrderOutcome.self).orderId
        case EventType.orderCancelled:
            template = "order_cancelled"
            let outcome = try event.payload(as: OrderOutcome.self)
            orderId = outcome.orderId
            values["reason"] = (outcome.reason ?? "cancelled").replacingOccurrences(of: "_", with: " ")
            values["refunded"] = try await db.query("SELECT 1 FROM payments WHERE order_id = $1 AND status IN ('SUCCEEDED', 'REFUNDED')", [orderId]).count > 0
        case EventType.orderShipped, EventType.orderDelivered:
            template = event.type == EventType.orderShipped ? "order_shipped" : "order_delivered"
            orderId = try event.payload(as: OrderOutcome.self).orderId
        case EventType.paymentRefunded:
            template = "payment_refunded"
            let refund = try event.payload(as: PaymentRefunded.self)
            orderId = refund.orderId
            values["amount"] = Money.format(refund.amountCents)
        default:
            throw PermanentFailure("notification worker does not handle \(event.type)")
        }
        guard let row = try await db.query(
            """
            SELECT o.user_id, o.order_number, o.total_cents, o.currency, u.email, u.first_name
            FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1
            """, [orderId]).first
        else { throw PermanentFailure("order \(orderId) does not exist") }
        values["first_name"] = try row.decode(String.self, "first_name")
        values["order_number"] = try row.decode(String.self, "order_number")
        values["total"] = Money.format(try row.decode(Int.self, "total_cents"))
        values["currency"] = try row.decode(String.self, "currency")
        let body = try templates.render(template, values)
        try await channel.deliver(
            OutgoingNotification(
                id: UUID(), eventId: event.id, userId: try row.decode(UUID.self, "user_id"), orderId: orderId,
                recipient: try row.decode(String.self, "email"), template: template, body: body),
            on: db)
        return []
    }
}
