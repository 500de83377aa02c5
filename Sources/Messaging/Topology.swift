import AMQP
import Domain
import Foundation

/// The worker roles; each consumes one durable queue.
public enum WorkerRole: String, Sendable, CaseIterable {
    case stock, payment, order, notification

    /// The event types (routing keys) this role's queue receives.
    public var eventTypes: [String] {
        switch self {
        case .stock: [EventType.orderPlaced, EventType.orderConfirmed, EventType.orderCancelled]
        case .order: [EventType.stockReserved, EventType.stockRejected, EventType.paymentSucceeded, EventType.paymentFailed]
        case .payment: [EventType.paymentRequested, EventType.orderCancelled, EventType.paymentRefundRequested]
        case .notification: [EventType.orderConfirmed, EventType.orderCancelled, EventType.paymentRefunded, EventType.orderShipped, EventType.orderDelivered]
        }
    }
}

/// Names of the exchanges and queues. A namespace other than `emporium` isolates test runs
/// (and lets two installations share a broker).
public struct MessagingNames: Sendable, Hashable {
    /// Prefix of every name (`EMPORIUM_NAMESPACE`, default `emporium`).
    public let namespace: String
    /// Creates names under `namespace`.
    public init(namespace: String = "emporium") { self.namespace = namespace }

    /// Reads `EMPORIUM_NAMESPACE`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> MessagingNames {
        MessagingNames(namespace: environment["EMPORIUM_NAMESPACE"] ?? "emporium")
    }

    /// The topic exchange every event is published to.
    public var eventsExchange: String { "\(namespace).events" }
    /// The direct exchange dead letters go through, routed by their queue's name.
    public var deadLetterExchange: String { "\(namespace).dlx" }
    /// The work queue of `role`.
    public func queue(_ role: WorkerRole) -> String { "\(namespace).\(role.rawValue)" }
    /// The dead-letter queue of a work queue.
    public func deadLetterQueue(_ role: WorkerRole) -> String { "\(queue(role)).dlq" }

    /// The delay queue for one backoff step of a work queue.
    public func retryQueue(_ role: WorkerRole, delay: Duration) -> String { "\(queue(role)).retry.\(milliseconds(delay))ms" }

    /// The role whose work or dead-letter queue is `name`, if any.
    public func role(ofQueue name: String) -> WorkerRole? {
        WorkerRole.allCases.first { queue($0) == name || deadLetterQueue($0) == name || name == $0.rawValue }
    }

    /// Every exchange, queue and binding of the system. Every process declares all of it
    /// (idempotently), so no event is unroutable because its consumer started later.
    ///
    /// Work queues are quorum queues whose delivery limit catches a message that crashes
    /// its worker outright; the broker then dead-letters it through the DLX to the role's
    /// dead-letter queue. Each backoff step is its own classic queue with a fixed TTL that
    /// dead-letters expired messages back into the work queue, so a short delay never waits
    /// behind a long one. Dead-letter queues are classic queues, so `emporium dlq` can read
    /// them and put them back unchanged.
    public func topology(policy: QueuePolicy = QueuePolicy()) -> AMQPTopology {
        var topology = AMQPTopology(exchanges: [
            AMQPExchange(name: eventsExchange, type: .topic),
            AMQPExchange(name: deadLetterExchange, type: .direct),
        ])
        for role in WorkerRole.allCases {
            let queue = queue(role)
            topology.queues.append(.quorum(queue, deliveryLimit: policy.deliveryLimit, deadLetterExchange: deadLetterExchange, deadLetterRoutingKey: queue))
            topology.queues.append(AMQPQueue(name: deadLetterQueue(role)))
            topology.bindings.append(AMQPBinding(queue: deadLetterQueue(role), exchange: deadLetterExchange, routingKey: queue))
            for delay in policy.retryDelays {
                topology.queues.append(AMQPQueue(name: retryQueue(role, delay: delay), arguments: [
                    "x-message-ttl": .int(Int64(milliseconds(delay))),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": .string(queue),
                ]))
            }
            for type in role.eventTypes {
                topology.bindings.append(AMQPBinding(queue: queue, exchange: eventsExchange, routingKey: type))
            }
        }
        return topology
    }
}

/// How failed messages are retried and when they are given up.
public struct QueuePolicy: Sendable, Hashable {
    /// Delay before each retry of a transient failure; the last repeats
    /// (`RETRY_DELAYS_MS`, default `1000,5000,30000`).
    public var retryDelays: [Duration] = [.seconds(1), .seconds(5), .seconds(30)]
    /// Failed attempts after which a transiently failing message is dead-lettered
    /// (`RETRY_MAX_ATTEMPTS`, default 5).
    public var maxAttempts = 5
    /// Deliveries after which the broker dead-letters a message that keeps crashing its
    /// worker (`WORKER_DELIVERY_LIMIT`, default 10). Part of the queue's declaration.
    public var deliveryLimit = 10

    /// The defaults.
    public init() {}

    /// The delay before retry number `attempt` (1-based).
    public func delay(afterAttempt attempt: Int) -> Duration {
        retryDelays[min(max(attempt, 1), retryDelays.count) - 1]
    }

    /// Reads the variables above; malformed values are errors.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> QueuePolicy {
        var policy = QueuePolicy()
        if let value = environment["RETRY_DELAYS_MS"] {
            let delays = value.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !delays.isEmpty, delays.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw PolicyError("RETRY_DELAYS_MS must be a comma-separated list of positive milliseconds")
            }
            policy.retryDelays = delays.map { .milliseconds($0!) }
        }
        if let value = environment["RETRY_MAX_ATTEMPTS"] {
            guard let attempts = Int(value), attempts >= 1 else { throw PolicyError("RETRY_MAX_ATTEMPTS must be at least 1") }
            policy.maxAttempts = attempts
        }
        if let value = environment["WORKER_DELIVERY_LIMIT"] {
            guard let limit = Int(value), limit >= 1 else { throw PolicyError("WORKER_DELIVERY_LIMIT must be at least 1") }
            policy.deliveryLimit = limit
        }
        return policy
    }
}

/// A retry setting that cannot be used.
public struct PolicyError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

func milliseconds(_ duration: Duration) -> Int {
    Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
}
