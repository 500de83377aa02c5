import Foundation
import Messaging
import Mustache
import Postgres
import Store

/// A rendered message for one recipient.
package struct OutgoingNotification: Sendable {
    package var id: UUID
    /// The event that caused it; with the channel, the dedup key.
    package var eventId: UUID
    package var userId: UUID?
    package var orderId: UUID?
    package var recipient: String
    package var template: String
    package var body: String

    /// The row that records this notification on `channel`.
    func record(channel: String) -> NotificationStore.Record {
        NotificationStore.Record(
            id: id, eventId: eventId, userId: userId, orderId: orderId, channel: channel, template: template, recipient: recipient, body: body)
    }
}

/// Where notifications go: email, SMS, webhook. `deliver` runs inside the notification
/// worker's transaction.
package protocol NotificationChannel: Sendable {
    /// `email`, `sms` or `webhook`.
    var name: String { get }
    /// Whether `deliver` calls a service outside the database (a mail relay): then each
    /// notification is sent in a transaction of its own (``NotificationHandler/batches(_:)``).
    var callsOut: Bool { get }
    /// Sends (or records) `notification`.
    func deliver(_ notification: OutgoingNotification, on db: PostgresConnection) async throws
}

/// Records every message in the `notifications` table instead of sending it: the
/// development and test channel, and the audit trail real adapters will also write.
package struct RecordingEmailChannel: NotificationChannel {
    package var name: String { "email" }
    package var callsOut: Bool { false }
    /// Creates the channel.
    package init() {}

    package func deliver(_ notification: OutgoingNotification, on db: PostgresConnection) async throws {
        try await NotificationStore().recordLater(notification.record(channel: name), on: db)
    }
}

/// Sends every message by email through an SMTP relay (`SMTP_HOST`), and records it like
/// ``RecordingEmailChannel``. The record comes first and its unique key (event, channel)
/// decides: a redelivered event finds it and sends nothing. A relay that is down fails the
/// transaction (nothing recorded), so the message is retried; one that refuses the message
/// (5xx) dead-letters it.
package struct SMTPEmailChannel: NotificationChannel {
    package var name: String { "email" }
    package var callsOut: Bool { true }
    let client: SMTPClient
    let from: String

    /// Creates the channel sending as `from` through `client`.
    package init(client: SMTPClient, from: String) {
        self.client = client
        self.from = from
    }

    package func deliver(_ notification: OutgoingNotification, on db: PostgresConnection) async throws {
        guard try await NotificationStore().record(notification.record(channel: name), on: db) else { return }
        let subject = "Emporium: " + notification.template.replacingOccurrences(of: "_", with: " ")
        do {
            try await client.send(from: from, to: notification.recipient, subject: subject, body: notification.body)
        } catch let failure as SMTPClient.Failure {
            throw failure.permanent ? PermanentFailure(failure.description) as any Error : TransientFailure(failure.description)
        }
    }
}

/// The message templates (Mustache), by name.
package struct NotificationTemplates: Sendable {
    private let library: MustacheLibrary

    /// The built-in templates.
    package init() throws {
        var library = MustacheLibrary()
        try library.register(
            "Hello {{first_name}},\n\nyour order {{order_number}} is confirmed. Total: {{total}} {{currency}}.\n\nThank you for shopping with Emporium.",
            named: "order_confirmed")
        try library.register(
            "Hello {{first_name}},\n\nyour order {{order_number}} was cancelled ({{reason}}).{{#refunded}} Your payment will be refunded.{{/refunded}}\n\nEmporium",
            named: "order_cancelled")
        try library.register(
            "Hello {{first_name}},\n\nwe refunded {{amount}} {{currency}} for order {{order_number}}.\n\nEmporium",
            named: "payment_refunded")
        try library.register("Hello {{first_name}},\n\nyour order {{order_number}} is on its way.\n\nEmporium", named: "order_shipped")
        try library.register("Hello {{first_name}},\n\nyour order {{order_number}} was delivered. Enjoy!\n\nEmporium", named: "order_delivered")
        self.library = library
    }

    /// Renders template `name` with `values`; throws for an unknown template.
    package func render(_ name: String, _ values: [String: Any]) throws -> String {
        guard let text = library.render(values, withTemplate: name) else {
            throw PermanentFailure("no notification template \(name)")
        }
        return text
    }
}
