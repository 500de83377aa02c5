import AMQP
import Domain
import Foundation

/// Headers Emporium puts on retried and dead-lettered messages, and on replays.
package enum DeadLetterHeader {
    /// The last error's message (at most 1,000 characters).
    package static let error = "x-error"
    /// `transient` or `permanent`.
    package static let errorClass = "x-error-class"
    /// Failed attempts so far.
    package static let attempts = "x-attempts"
    /// The role whose handler failed.
    package static let consumer = "x-consumer"
    /// Where the message was first published.
    package static let originalExchange = "x-original-exchange"
    /// Its original routing key (the event type).
    package static let originalRoutingKey = "x-original-routing-key"
    /// ISO 8601 time of the first failure.
    package static let firstFailureAt = "x-first-failure-at"
    /// ISO 8601 time of the last failure.
    package static let lastFailureAt = "x-last-failure-at"
    /// How many times `emporium dlq replay` republished it.
    package static let replayCount = "x-replay-count"
    /// ISO 8601 time of the last replay.
    package static let replayedAt = "x-replayed-at"

    /// The failure headers a replay removes, so the message starts its attempts afresh.
    package static let failureHeaders = [error, errorClass, attempts, firstFailureAt, lastFailureAt]

    /// ISO 8601 with milliseconds, UTC.
    package static func timestamp(_ date: Date = Date()) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
    }
}

/// Where a failed delivery goes next.
package enum FailureRoute: Equatable, Sendable {
    /// To the delay queue of that step; it comes back to the work queue after the delay.
    case retry(queue: String, delay: Duration)
    /// To the dead-letter queue.
    case deadLetter(queue: String)
}

/// Decides the route of a failed delivery and the headers it carries there.
package struct FailureRouter: Sendable {
    let names: MessagingNames
    let policy: QueuePolicy
    let role: WorkerRole

    /// Creates the router for a role's queue.
    package init(names: MessagingNames, policy: QueuePolicy, role: WorkerRole) {
        self.names = names
        self.policy = policy
        self.role = role
    }

    /// The route and the message to publish for `delivery`, which failed with `error`.
    package func route(_ delivery: AMQPDelivery, error: String, failure: FailureClass, now: Date = Date()) -> (FailureRoute, AMQPOutgoingMessage) {
        var headers = delivery.properties.headers
        let attempts = Int(headers[DeadLetterHeader.attempts]?.intValue ?? 0) + 1
        headers[DeadLetterHeader.error] = .string(String(error.prefix(1_000)))
        headers[DeadLetterHeader.errorClass] = .string(failure.rawValue)
        headers[DeadLetterHeader.attempts] = .int(Int64(attempts))
        headers[DeadLetterHeader.consumer] = .string(role.rawValue)
        if headers[DeadLetterHeader.originalExchange] == nil {
            // A message coming back from a delay queue arrives through the default exchange.
            headers[DeadLetterHeader.originalExchange] = .string(delivery.exchange.isEmpty ? names.eventsExchange : delivery.exchange)
            headers[DeadLetterHeader.originalRoutingKey] = .string(
                delivery.exchange.isEmpty ? (delivery.properties.type ?? delivery.routingKey) : delivery.routingKey)
        }
        let nowText = DeadLetterHeader.timestamp(now)
        if headers[DeadLetterHeader.firstFailureAt] == nil { headers[DeadLetterHeader.firstFailureAt] = .string(nowText) }
        headers[DeadLetterHeader.lastFailureAt] = .string(nowText)

        let route: FailureRoute
        if failure == .transient && attempts < policy.maxAttempts {
            let delay = policy.delay(afterAttempt: attempts)
            route = .retry(queue: names.retryQueue(role, delay: delay), delay: delay)
        } else {
            route = .deadLetter(queue: names.deadLetterQueue(role))
        }
        var properties = delivery.properties
        properties.headers = headers
        properties.persistent = true
        let target: String =
            switch route {
            case .retry(let queue, _): queue
            case .deadLetter(let queue): queue
            }
        return (route, AMQPOutgoingMessage(exchange: "", routingKey: target, body: delivery.body, properties: properties, mandatory: true))
    }
}
