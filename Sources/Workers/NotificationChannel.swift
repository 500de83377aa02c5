import Foundation
import Messaging
import Mustache
import Postgres

/// A rendered message for one recipient.
public struct OutgoingNotification: Sendable {
    public var id: UUID
    /// The event that caused it; with the channel, the dedup key.
    public var eventId: UUID
    public var userId: UUID?
    public var orderId: UUID?
    public var recipient: String
    public var template: String
    public var body: String
}

/// Where notifications go: email, SMS, webhook. `deliver` runs inside the notification
/// worker's transaction.
public protocol NotificationChannel: Sendable {
    /// `email`, `sms` or `webhook`.
    var name: String { get }
    /// Sends (or records) `notification`.
    func deliver(_ notification: OutgoingNotification, on db: PostgresConnection) async throws
}

/// Records every message in the `notifications` table instead of sending it: the
/// development and test channel, and the audit trail real adapters will also write.
public struct RecordingEmailChannel: NotificationChannel {
    public var name: String { "email" }
    /// Creates the channel.
    public init() {}

    public func deliver(_ notification: OutgoingNotification, on db: PostgresConnection) async throws {
        try await db.query(
            """
            INSERT INTO notifications (id, user_id, order_id, event_id, channel, template, recipient, body, status, sent_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'SENT', now())
            ON CONFLICT (event_id, channel) DO NOTHING
            """,
            [notification.id, notification.userId, notification.orderId, notification.eventId, name,
             notification.template, notification.recipient, notification.body])
    }
}

/// Sends every message by email through an SMTP relay (`SMTP_HOST`), and records it like
/// ``RecordingEmailChannel``. The record comes first and its unique key (event, channel)
/// decides: a redelivered event finds it and sends nothing. A relay that is down fails the
/// transaction (nothing recorded), so the message is retried; one that refuses the message
/// (5xx) dead-letters it.
public struct SMTPEmailChannel: NotificationChannel {
    public var name: String { "email" }
    let client: SMTPClient
    let from: String

    /// Creates the channel sending as `from` through `client`.
    public init(client: SMTPClient, from: String) {
        self.client = client
        self.from = from
    }

    public func deliver(_ notification: OutgoingNotification, on db: PostgresConnection) async throws {
        let recorded = try await db.query(
            """
            INSERT INTO notifications (id, user_id, order_id, event_id, channel, template, recipient, body, status, sent_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'SENT', now())
            ON CONFLICT (event_id, channel) DO NOTHING
            """,
            [notification.id, notification.userId, notification.orderId, notification.eventId, name,
             notification.template, notification.recipient, notification.body])
        guard recorded.affectedRows == 1 else { return }
        let subject = "Emporium: " + notification.template.replacingOccurrences(of: "_", with: " ")
        do {
            try await client.send(from: from, to: notification.recipient, subject: subject, body: notification.body)
        } catch let failure as SMTPClient.Failure {
            throw failure.permanent ? PermanentFailure(failure.description) as any Error : TransientFailure(failure.description)
        }
    }
}

/// The message templates (Mustache), by name.
public struct NotificationTemplates: Sendable {
    private let library: MustacheLibrary

    /// The built-in templates.
    public init() throws {
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
    public func render(_ name: String, _ values: [String: Any]) throws -> String {
        guard let text = library.render(values, withTemplate: name) else {
            throw PermanentFailure("no notification template \(name)")
        }
        return text
    }
}

