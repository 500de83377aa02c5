import Foundation
import Postgres

/// Notifications sent: `notifications`, one per event and channel.
package struct NotificationStore: Sendable {
    /// Creates the store.
    package init() {}

    /// A notification to record.
    package struct Record: Sendable {
        package let id: UUID
        package let eventId: UUID
        package let userId: UUID?
        package let orderId: UUID?
        package let channel: String
        package let template: String
        package let recipient: String
        package let body: String
        package init(id: UUID, eventId: UUID, userId: UUID?, orderId: UUID?, channel: String, template: String, recipient: String, body: String) {
            self.id = id
            self.eventId = eventId
            self.userId = userId
            self.orderId = orderId
            self.channel = channel
            self.template = template
            self.recipient = recipient
            self.body = body
        }
    }

    private static let insert = """
        INSERT INTO notifications (id, user_id, order_id, event_id, channel, template, recipient, body, status, sent_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'SENT', now())
        ON CONFLICT (event_id, channel) DO NOTHING
        """

    /// Records a sent notification; false when the event already has one on this channel
    /// (its unique key decides, so a redelivery sends nothing).
    package func record(_ record: Record, on db: PostgresConnection) async throws -> Bool {
        try await db.query(Self.insert, Self.parameters(record)).affectedRows == 1
    }

    /// Records a notification that nothing sends, once per event and channel, with the
    /// transaction's next statement (no round trip of its own): for a channel that only
    /// records, whose caller has nothing to decide from the answer.
    package func recordLater(_ record: Record, on db: PostgresConnection) async throws {
        try await db.enqueue(Self.insert, Self.parameters(record))
    }

    private static func parameters(_ record: Record) -> [any PostgresEncodable] {
        [record.id, record.userId, record.orderId, record.eventId, record.channel, record.template, record.recipient, record.body]
    }

    /// Records a notice for admins (channel `admin`, no user), once per `eventId`.
    package func recordAdminNotice(eventId: UUID, template: String, body: String, on db: PostgresConnection) async throws {
        try await db.query(
            """
            INSERT INTO notifications (id, event_id, channel, template, recipient, body, status, sent_at)
            VALUES (gen_random_uuid(), $1, 'admin', $2, 'admins', $3, 'SENT', now()) ON CONFLICT (event_id, channel) DO NOTHING
            """, [eventId, template, body])
    }
}
