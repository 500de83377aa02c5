import Domain
import Foundation

/// Every event on the bus, as JSON: `id` (also the AMQP message id and the inbox key),
/// `type` (also the routing key), `occurred_at`, `order_id`, `data`, `traceparent`,
/// `schema_version`.
package struct EventEnvelope: Sendable, Codable, Hashable {
    /// The schema version this code writes and reads.
    package static let currentSchemaVersion = 1

    /// Unique event id.
    package var id: UUID
    /// Event type, e.g. `order.placed`: kept as text, so an event of a type this build does
    /// not know still decodes (and is dead-lettered as such, not dropped). See ``eventType``.
    package var type: String
    /// When the fact happened.
    package var occurredAt: Date
    /// The order it concerns, if any.
    package var orderId: UUID?
    /// The typed payload, as JSON.
    package var data: JSONValue
    /// W3C trace context of the request that caused it.
    package var traceparent: String?
    /// Payload schema version.
    package var schemaVersion: Int

    /// Wraps a typed payload in a new envelope.
    package init<Payload: Encodable>(
        type: EventType, orderId: UUID?, payload: Payload, traceparent: String? = nil,
        id: UUID = .random(), occurredAt: Date = Date()
    ) throws {
        try self.init(typeName: type.rawValue, orderId: orderId, payload: payload, traceparent: traceparent, id: id, occurredAt: occurredAt)
    }

    /// An envelope of any type name, also one this build does not know (for tests of the
    /// unknown-type path and for tools that replay what others wrote).
    package init<Payload: Encodable>(
        typeName: String, orderId: UUID?, payload: Payload, traceparent: String? = nil,
        id: UUID = .random(), occurredAt: Date = Date()
    ) throws {
        self.id = id
        self.type = typeName
        self.occurredAt = occurredAt
        self.orderId = orderId
        self.data = try JSONValueEncoder().encode(payload)
        self.traceparent = traceparent
        self.schemaVersion = Self.currentSchemaVersion
    }

    /// The type, when this build knows it.
    package var eventType: EventType? { EventType(rawValue: type) }

    /// Decodes `data` as `Payload`, straight from the tree (no bytes in between).
    package func payload<Payload: Decodable>(as type: Payload.Type) throws -> Payload {
        try JSONValueDecoder().decode(Payload.self, from: data)
    }

    /// The envelope as JSON bytes: the same JSON as `EmporiumJSON.encoder()` writes, in one
    /// pass through a tree (see JSONValueText).
    package func encoded() throws -> [UInt8] { try JSONValueEncoder().encode(self).jsonBytes }

    /// Parses an envelope from a message body: one pass to a tree, then the fields from it.
    package static func decode(_ bytes: [UInt8]) throws -> EventEnvelope {
        try JSONValueDecoder().decode(EventEnvelope.self, from: JSONValue(parsing: bytes))
    }
}
