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
        case .payment: [EventType.paymentRequested, EventType.orderCancelled]
        case .notification: [EventType.orderConfirmed, EventType.orderCancelled, EventType.paymentRefunded]
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

    /// Deliveries of one message after which the broker dead-letters it (a crash loop).
    public static let deliveryLimit = 10

    /// Every exchange, queue and binding of the system. Every process declares all of it
    /// (idempotently), so no event is unroutable because its consumer started later.
    public var topology: AMQPTopology {
        var topology = AMQPTopology(exchanges: [
            AMQPExchange(name: eventsExchange, type: .topic),
            AMQPExchange(name: deadLetterExchange, type: .direct),
        ])
        for role in WorkerRole.allCases {
            let queue = queue(role)
            topology.queues.append(.quorum(queue, deliveryLimit: Self.deliveryLimit, deadLetterExchange: deadLetterExchange, deadLetterRoutingKey: queue))
            topology.queues.append(AMQPQueue(name: deadLetterQueue(role), arguments: ["x-queue-type": "quorum"]))
            topology.bindings.append(AMQPBinding(queue: deadLetterQueue(role), exchange: deadLetterExchange, routingKey: queue))
            for type in role.eventTypes {
                topology.bindings.append(AMQPBinding(queue: queue, exchange: eventsExchange, routingKey: type))
            }
        }
        return topology
    }
}
