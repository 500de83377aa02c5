import Foundation

/// Message properties (the AMQP `basic` content header).
public struct AMQPProperties: Sendable, Hashable {
    /// Unique id; the publisher's confirm and return tracking relies on it, so
    /// ``AMQPPublisher`` assigns a UUID when it is missing.
    public var messageID: String?
    /// MIME type of the body, e.g. `application/json`.
    public var contentType: String?
    /// Application message type (Emporium's event type).
    public var type: String?
    /// Correlates replies or related messages.
    public var correlationID: String?
    /// Time of publishing, in whole seconds since 1970.
    public var timestamp: Date?
    /// Application headers.
    public var headers: AMQPTable = [:]
    /// Survives a broker restart when true (delivery mode 2).
    public var persistent: Bool = true
    /// Per-message TTL in milliseconds, as a string (AMQP's format).
    public var expiration: String?
    /// The publishing application.
    public var appID: String?
    /// Reply queue for RPC-style messages.
    public var replyTo: String?

    /// Creates properties; every field is optional.
    public init(
        messageID: String? = nil, contentType: String? = nil, type: String? = nil,
        correlationID: String? = nil, timestamp: Date? = nil, headers: AMQPTable = [:],
        persistent: Bool = true, expiration: String? = nil, appID: String? = nil, replyTo: String? = nil
    ) {
        self.messageID = messageID
        self.contentType = contentType
        self.type = type
        self.correlationID = correlationID
        self.timestamp = timestamp
        self.headers = headers
        self.persistent = persistent
        self.expiration = expiration
        self.appID = appID
        self.replyTo = replyTo
    }
}

/// A message to publish: where it goes and what it carries.
public struct AMQPOutgoingMessage: Sendable {
    /// Target exchange ("" is the default exchange, routing by queue name).
    public var exchange: String
    /// Routing key.
    public var routingKey: String
    /// Body bytes.
    public var body: [UInt8]
    /// Properties and headers.
    public var properties: AMQPProperties
    /// Ask the broker to return the message if no queue receives it.
    public var mandatory: Bool

    /// Creates a message; `mandatory` defaults to true so unroutable messages are noticed.
    public init(exchange: String, routingKey: String, body: [UInt8], properties: AMQPProperties = .init(), mandatory: Bool = true) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
    }
}

/// A message received from a queue.
public struct AMQPDelivery: Sendable {
    /// The broker's tag for this delivery on its channel.
    public let deliveryTag: UInt64
    /// Whether the broker delivered it before (requeued after a nack or a lost connection).
    public let redelivered: Bool
    /// The exchange it was published to.
    public let exchange: String
    /// Its routing key.
    public let routingKey: String
    /// Body bytes.
    public let body: [UInt8]
    /// Properties and headers.
    public let properties: AMQPProperties
    /// Which connection of the consumer received it; acks for an older one are void.
    let generation: Int
}

/// How a published message ended.
public enum AMQPPublishOutcome: Sendable, Equatable {
    /// The broker took responsibility for it (routed to at least one queue and persisted).
    case confirmed
    /// It was `mandatory` and no queue received it.
    case returned(replyCode: Int, replyText: String)
    /// The broker refused it (internal error); publish again.
    case nacked
}
