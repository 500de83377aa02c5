import AMQP
import Domain
import Foundation
import Units

/// Names of the exchanges and queues. A namespace other than `emporium` isolates test runs
/// (and lets two installations share a broker).
package struct MessagingNames: Sendable, Hashable {
    /// Prefix of every name (`EMPORIUM_NAMESPACE`, default `emporium`).
    package let namespace: String
    /// Creates names under `namespace`.
    package init(namespace: String = "emporium") { self.namespace = namespace }

    /// Reads `EMPORIUM_NAMESPACE`.
    package static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> MessagingNames {
        MessagingNames(namespace: environment["EMPORIUM_NAMESPACE"] ?? "emporium")
    }

    /// The topic exchange every event is published to.
    package var eventsExchange: String { "\(namespace).events" }
    /// The direct exchange dead letters go through, routed by their queue's name.
    package var deadLetterExchange: String { "\(namespace).dlx" }
    /// The work queue of `role`.
    package func queue(_ role: WorkerRole) -> String { "\(namespace).\(role.rawValue)" }
    /// The dead-letter queue of a work queue.
    package func deadLetterQueue(_ role: WorkerRole) -> String { "\(queue(role)).dlq" }

    /// The delay queue for one backoff step of a work queue.
    package func retryQueue(_ role: WorkerRole, delay: Duration) -> String { "\(queue(role)).retry.\(delay.wholeMilliseconds)ms" }

    /// The role whose work or dead-letter queue is `name`, if any.
    package func role(ofQueue name: String) -> WorkerRole? {
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
    package func topology(policy: QueuePolicy = QueuePolicy()) -> AMQPTopology {
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
                topology.queues.append(
                    AMQPQueue(
                        name: retryQueue(role, delay: delay),
                        arguments: [
                            "x-message-ttl": .int(Int64(delay.wholeMilliseconds)),
                            "x-dead-letter-exchange": "",
                            "x-dead-letter-routing-key": .string(queue),
                        ]))
            }
            for type in role.consumes {
                topology.bindings.append(AMQPBinding(queue: queue, exchange: eventsExchange, routingKey: type.rawValue))
            }
        }
        return topology
    }
}

/// How failed messages are retried and when they are given up.
package struct QueuePolicy: Sendable, Hashable {
    /// Delay before each retry of a transient failure; the last repeats
    /// (`RETRY_DELAYS_MS`, default `1000,5000,30000`).
    package var retryDelays: [Duration] = [.seconds(1), .seconds(5), .seconds(30)]
    /// Failed attempts after which a transiently failing message is dead-lettered
    /// (`RETRY_MAX_ATTEMPTS`, default 5).
    package var maxAttempts = 5
    /// Deliveries after which the broker dead-letters a message that keeps crashing its
    /// worker (`WORKER_DELIVERY_LIMIT`, default 10). Part of the queue's declaration.
    package var deliveryLimit = 10

    /// The defaults.
    package init() {}

    /// The delay before retry number `attempt` (1-based).
    package func delay(afterAttempt attempt: Int) -> Duration {
        retryDelays[min(max(attempt, 1), retryDelays.count) - 1]
    }
}
