import Units

/// An exchange to declare.
public struct AMQPExchange: Sendable, Hashable {
    /// Exchange kinds.
    public enum Kind: String, Sendable { case direct, topic, fanout, headers }
    /// Exchange name.
    public var name: String
    /// Exchange kind.
    public var type: Kind
    /// Survives a broker restart.
    public var durable: Bool
    /// Deleted when its last binding goes.
    public var autoDelete: Bool
    /// Only reachable through exchange-to-exchange bindings.
    public var `internal`: Bool
    /// Extra arguments.
    public var arguments: AMQPTable

    /// Creates a declaration; durable by default.
    public init(name: String, type: Kind, durable: Bool = true, autoDelete: Bool = false, internal: Bool = false, arguments: AMQPTable = [:]) {
        self.name = name
        self.type = type
        self.durable = durable
        self.autoDelete = autoDelete
        self.internal = `internal`
        self.arguments = arguments
    }
}

/// A queue to declare.
public struct AMQPQueue: Sendable, Hashable {
    /// Queue name.
    public var name: String
    /// Survives a broker restart.
    public var durable: Bool
    /// Owned by the declaring connection.
    public var exclusive: Bool
    /// Deleted when its last consumer goes.
    public var autoDelete: Bool
    /// Arguments such as `x-queue-type`, `x-delivery-limit`, `x-dead-letter-exchange`,
    /// `x-message-ttl`; see the helpers below.
    public var arguments: AMQPTable

    /// Creates a declaration; durable by default.
    public init(name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false, arguments: AMQPTable = [:]) {
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.arguments = arguments
    }

    /// A durable quorum queue. `deliveryLimit` caps redeliveries of a message (a crash
    /// loop included) before it is dead-lettered to `deadLetterExchange`.
    public static func quorum(
        _ name: String, deliveryLimit: Int? = nil, deadLetterExchange: String? = nil,
        deadLetterRoutingKey: String? = nil, messageTTL: Duration? = nil
    ) -> AMQPQueue {
        var arguments: AMQPTable = ["x-queue-type": "quorum"]
        if let deliveryLimit { arguments["x-delivery-limit"] = .int(Int64(deliveryLimit)) }
        if let deadLetterExchange { arguments["x-dead-letter-exchange"] = .string(deadLetterExchange) }
        if let deadLetterRoutingKey { arguments["x-dead-letter-routing-key"] = .string(deadLetterRoutingKey) }
        if let messageTTL {
            arguments["x-message-ttl"] = .int(Int64(messageTTL.wholeMilliseconds))
        }
        return AMQPQueue(name: name, arguments: arguments)
    }
}

/// A queue bound to an exchange with a routing key (a pattern on topic exchanges).
public struct AMQPBinding: Sendable, Hashable {
    /// The queue.
    public var queue: String
    /// The exchange.
    public var exchange: String
    /// The routing key or pattern.
    public var routingKey: String
    /// Extra arguments.
    public var arguments: AMQPTable

    /// Creates a binding.
    public init(queue: String, exchange: String, routingKey: String, arguments: AMQPTable = [:]) {
        self.queue = queue
        self.exchange = exchange
        self.routingKey = routingKey
        self.arguments = arguments
    }
}

/// Exchanges, queues and bindings declared together, idempotently, on every (re)connect.
public struct AMQPTopology: Sendable {
    /// Exchanges, declared first.
    public var exchanges: [AMQPExchange]
    /// Queues, declared after the exchanges their arguments may name.
    public var queues: [AMQPQueue]
    /// Bindings, declared last.
    public var bindings: [AMQPBinding]

    /// Creates a topology; declared in the order exchanges, queues, bindings.
    public init(exchanges: [AMQPExchange] = [], queues: [AMQPQueue] = [], bindings: [AMQPBinding] = []) {
        self.exchanges = exchanges
        self.queues = queues
        self.bindings = bindings
    }
}
