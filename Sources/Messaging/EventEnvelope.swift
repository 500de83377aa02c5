import Foundation

/// Every event on the bus, as JSON: `id` (also the AMQP message id and the inbox key),
/// `type` (also the routing key), `occurred_at`, `order_id`, `data`, `traceparent`,
/// `schema_version`.
public struct EventEnvelope: Sendable, Codable, Hashable {
    /// The schema version this code writes and reads.
    public static let currentSchemaVersion = 1

    /// Unique event id.
    public var id: UUID
    /// Event type, e.g. `order.placed`.
    public var type: String
    /// When the fact happened.
    public var occurredAt: Date
    /// The order it concerns, if any.
    public var orderId: UUID?
    /// The typed payload, as JSON.
    public var data: JSONValue
    /// W3C trace context of the request that caused it.
    public var traceparent: String?
    /// Payload schema version.
    public var schemaVersion: Int

    /// Wraps a typed payload in a new envelope.
    public init<Payload: Encodable>(
        type: String, orderId: UUID?, payload: Payload, traceparent: String? = nil,
        id: UUID = UUID(), occurredAt: Date = Date()
    ) throws {
        self.id = id
        self.type = type
        self.occurredAt = occurredAt
        self.orderId = orderId
        self.data = try EmporiumJSON.decoder().decode(JSONValue.self, from: EmporiumJSON.encoder().encode(payload))
        self.traceparent = traceparent
        self.schemaVersion = Self.currentSchemaVersion
    }

    /// Decodes `data` as `Payload`.
    public func payload<Payload: Decodable>(as type: Payload.Type) throws -> Payload {
        try EmporiumJSON.decoder().decode(Payload.self, from: EmporiumJSON.encoder().encode(data))
    }

    /// The envelope as JSON bytes.
    public func encoded() throws -> [UInt8] { Array(try EmporiumJSON.encoder().encode(self)) }

    /// Parses an envelope from a message body.
    public static func decode(_ bytes: [UInt8]) throws -> EventEnvelope {
        try EmporiumJSON.decoder().decode(EventEnvelope.self, from: Data(bytes))
    }
}
