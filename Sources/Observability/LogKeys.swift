/// The metadata keys of Emporium's log lines, in one place (as swift-kafka-client keeps its
/// `KafkaLoggingKeys`): dotted names, the same in every process, so a log store can filter on
/// them. The JSON log handler redacts any key that names a secret.
package enum LogKeys {
    /// The HTTP request's id (also the `X-Request-Id` response header).
    package static let requestID = "request.id"
    /// The order a line is about.
    package static let orderID = "order.id"
    /// The caller (API) or the customer (workers).
    package static let userID = "user.id"
    /// The AMQP message id (the event's id, the inbox key).
    package static let messageID = "message.id"
    /// The event type.
    package static let eventType = "event.type"
    /// The status an order just moved to.
    package static let orderStatus = "order.status"
    /// The work queue.
    package static let queue = "amqp.queue"
    /// The W3C trace id (32 hex digits) and the whole `traceparent`.
    package static let traceID = "trace.id"
    package static let traceParent = "trace.parent"
    /// How many times a dead letter was replayed.
    package static let replayCount = "replay.count"
    /// The error's text.
    package static let error = "error"
    /// A saga step being re-driven.
    package static let sagaStep = "saga.step"
    /// The server process id of a PostgreSQL session.
    package static let backendPID = "db.backend_pid"
}
