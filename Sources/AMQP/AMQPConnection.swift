import CRabbitMQ
import IOThread
import Logging

/// Holds a session for one owner thread; reopens it when the previous one broke.
final class SessionHolder: @unchecked Sendable {
    let configuration: AMQPConfiguration
    var session: AMQPSession?
    /// Bumped for every new session: deliveries fetched on an older one cannot be acked.
    var generation = 0
    init(configuration: AMQPConfiguration) { self.configuration = configuration }

    func current() throws -> AMQPSession {
        if let session, session.isOpen { return session }
        session?.close()
        session = nil
        let fresh = try AMQPSession(configuration: configuration)
        session = fresh
        generation += 1
        return fresh
    }

    func close() {
        session?.close()
        session = nil
    }

    /// Lets rabbitmq-c send a due heartbeat (it only does so inside its calls) and notice a
    /// dead peer; an idle connection would otherwise be closed by the broker.
    func serviceHeartbeat() {
        guard let session, session.isOpen else { return }
        do {
            session.releaseBuffers()
            _ = try session.waitFrame(timeout: .zero)
        } catch { close() }
    }
}

/// A general-purpose AMQP connection for topology and inspection: declare, bind, purge,
/// delete, `basic.get`. It reopens itself on the next call after the connection broke.
/// Publishing goes through ``AMQPPublisher`` and consuming through ``AMQPConsumer``, each on
/// its own connection, as RabbitMQ recommends.
public final class AMQPConnection: Sendable {
    private let thread: IOThread
    private let holder: SessionHolder
    private let heartbeat: Task<Void, Never>

    private init(thread: IOThread, holder: SessionHolder) {
        self.thread = thread
        self.holder = holder
        // Held open between calls (a slow replay browses its queue for minutes): keep it alive.
        let interval = max(holder.configuration.heartbeat / 2, .milliseconds(500))
        self.heartbeat = Task { [weak thread] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let thread else { return }
                thread.submit { holder.serviceHeartbeat() }
            }
        }
    }

    deinit {
        heartbeat.cancel()
        let holder = self.holder
        thread.submit { holder.close() }
        thread.shutdown()
    }

    /// Connects now, so bad credentials or an unreachable broker surface here.
    public static func connect(configuration: AMQPConfiguration) async throws -> AMQPConnection {
        let thread = IOThread(name: "amqp-conn")
        let holder = SessionHolder(configuration: configuration)
        do {
            try await thread.run { _ = try holder.current() }
        } catch {
            thread.shutdown()
            throw error
        }
        return AMQPConnection(thread: thread, holder: holder)
    }

    /// Declares exchanges, queues and bindings (idempotent when they already match).
    public func declare(_ topology: AMQPTopology) async throws {
        try await onSession { try $0.declare(topology) }
    }

    /// Declares one queue; returns its current depth and consumer count.
    @discardableResult
    public func declareQueue(_ queue: AMQPQueue) async throws -> (messages: Int, consumers: Int) {
        try await onSession { try $0.declareQueue(queue) }
    }

    /// Depth and consumer count of an existing queue (a passive declare; `channelClosed` with
    /// reply code 404 when it does not exist).
    public func queueStatus(_ name: String) async throws -> (messages: Int, consumers: Int) {
        try await onSession { try $0.declareQueue(AMQPQueue(name: name), passive: true) }
    }

    /// Removes every ready message from `name`; returns how many.
    @discardableResult
    public func purgeQueue(_ name: String) async throws -> Int {
        try await onSession { try $0.purgeQueue(name) }
    }

    /// Deletes a queue and its messages.
    public func deleteQueue(_ name: String) async throws {
        try await onSession { try $0.deleteQueue(name) }
    }

    /// Deletes an exchange.
    public func deleteExchange(_ name: String) async throws {
        try await onSession { try $0.deleteExchange(name) }
    }

    /// Takes one message off `queue` and acknowledges it at once; nil when empty.
    public func getAndAck(queue: String) async throws -> AMQPDelivery? {
        try await onSession { try $0.get(queue: queue, autoAck: true) }
    }

    /// Takes one message off `queue` without acknowledging it (`basic.get`): it stays with
    /// this connection until ``ack(_:)``, ``requeueAll()`` or ``close()`` (which requeues it).
    /// Classic queues put requeued messages back in their original positions, so browsing
    /// a queue and requeueing leaves its order and depth as they were.
    public func get(queue: String) async throws -> AMQPDelivery? {
        try await thread.run { [holder] in
            let session = try holder.current()
            defer { session.releaseBuffers() }
            guard let delivery = try session.get(queue: queue, autoAck: false) else { return nil }
            return AMQPDelivery(
                deliveryTag: delivery.deliveryTag, redelivered: delivery.redelivered, exchange: delivery.exchange,
                routingKey: delivery.routingKey, body: delivery.body, properties: delivery.properties, generation: holder.generation)
        }
    }

    /// Acknowledges a message fetched with ``get(queue:)``: the broker deletes it.
    public func ack(_ delivery: AMQPDelivery) async throws {
        try await thread.run { [holder] in
            guard let session = holder.session, session.isOpen, delivery.generation == holder.generation else {
                throw AMQPError(code: .connectionLost, message: "the message came on a connection that has closed; it is back in its queue")
            }
            try session.ack(delivery.deliveryTag)
        }
    }

    /// Puts every message fetched with ``get(queue:)`` and not acked back in its queue.
    public func requeueAll() async throws {
        try await thread.run { [holder] in
            guard let session = holder.session, session.isOpen else { return }
            try AMQPStatus.check(amqp_basic_nack(session.state, session.channel, 0, 1, 1), "basic.nack (requeue all)")
            // A round trip makes sure the broker has processed the nack before we go on.
            try session.qos(prefetch: 0)
        }
    }

    /// One round trip to the broker (a `basic.qos` on the channel): proves the connection
    /// and the broker answer, within the configuration's RPC timeout.
    public func ping() async throws {
        try await onSession { try $0.qos(prefetch: 0) }
    }

    /// Closes the connection.
    public func close() async {
        heartbeat.cancel()
        _ = try? await thread.run { [holder] in holder.close() }
        thread.shutdown()
    }

    private func onSession<T: Sendable>(_ body: @escaping @Sendable (AMQPSession) throws -> T) async throws -> T {
        try await thread.run { [holder] in
            let session = try holder.current()
            defer { session.releaseBuffers() }
            return try body(session)
        }
    }
}
