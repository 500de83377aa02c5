import AMQP
import Domain
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// One event as live pages see it: what happened to which order, and the status it announces.
package struct LiveEvent: Sendable, Equatable {
    /// Increases by one per event this process received; the SSE id (`Last-Event-ID`).
    package let sequence: Int
    package let type: String
    package let orderId: UUID?
    /// The order's new status when the event announces one (`order.confirmed` → CONFIRMED).
    package let status: String?
    package let occurredAt: Date
}

/// Every event of the system, fanned out to the open live pages of this process: an
/// exclusive, auto-deleted queue of its own bound to the events exchange (so every API replica
/// sees every event, and the queue disappears with the process), a ring of the latest events
/// for reconnecting clients (`Last-Event-ID`), and a bounded buffer per subscriber (a slow page
/// loses the oldest events, never slows the others or grows memory).
package final class EventFanOut: Service, Sendable {
    /// How many recent events a reconnecting client can catch up on.
    package static let replayCapacity = 500
    /// Events buffered per subscriber before the oldest are dropped.
    package static let subscriberBuffer = 256

    private struct State {
        var sequence = 0
        var recent: [LiveEvent] = []
        var seenIds: [UUID: Int] = [:]
        var subscribers: [UUID: AsyncStream<LiveEvent>.Continuation] = [:]
    }

    private let state = Mutex(State())
    /// Created by the first ``start()``: until someone opens a live page, this process
    /// consumes nothing (an API nobody watches pays nothing for the feed).
    private let consumer = Mutex<(consumer: AMQPConsumer?, stopped: Bool)>((nil, false))
    private let started: AsyncStream<Void>
    private let startedSignal: AsyncStream<Void>.Continuation
    private let amqp: AMQPConfiguration
    private let options: AMQPConsumer.Options
    private let queue: String
    private let logger: Logger

    /// Prepares the feed; it connects on the first ``start()``.
    package init(amqp: AMQPConfiguration, names: MessagingNames, instance: String, logger: Logger) {
        let safe = String(instance.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "-" }.prefix(100))
        queue = "\(names.namespace).live.\(safe).\(UUID().uuidString.prefix(8).lowercased())"
        var options = AMQPConsumer.Options()
        options.prefetch = 64
        options.consumerTag = "emporium-live"
        options.redeliveriesOneAtATime = false
        options.topology = AMQPTopology(
            exchanges: [AMQPExchange(name: names.eventsExchange, type: .topic)],
            queues: [AMQPQueue(name: queue, durable: false, exclusive: true, autoDelete: true, arguments: ["x-max-length": .int(10_000)])],
            bindings: [AMQPBinding(queue: queue, exchange: names.eventsExchange, routingKey: "#")])
        self.options = options
        self.amqp = amqp
        self.logger = logger
        (started, startedSignal) = AsyncStream.makeStream(of: Void.self)
    }

    /// Connects the feed if it is not yet (idempotent; cheap to call on every page).
    package func start() {
        let created = consumer.withLock { box -> Bool in
            guard box.consumer == nil, !box.stopped else { return false }
            box.consumer = AMQPConsumer(configuration: amqp, queue: queue, options: options, logger: logger)
            return true
        }
        if created {
            logger.info("live feed started", metadata: ["amqp.queue": "\(queue)"])
            startedSignal.yield(())
            startedSignal.finish()
        }
    }

    /// Whether the feed is connected to the broker (pages fall back to polling when not).
    package var isConnected: Bool { consumer.withLock { $0.consumer?.isConnected ?? false } }

    /// Waits until the feed is connected (started if need be), at most `limit`; whether it is.
    /// A stream that reads a snapshot after subscribing waits for this first, so no event
    /// falls between the snapshot and the feed while the process's first page connects it.
    package func connected(within limit: Duration) async -> Bool {
        start()
        let deadline = ContinuousClock.now + limit
        while !isConnected, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return isConnected
    }

    /// Subscribes: the events after `lastSequence` still in the ring, then every new one.
    /// The stream ends at shutdown or when the caller stops iterating.
    package func subscribe(after lastSequence: Int?) -> (missed: [LiveEvent], events: AsyncStream<LiveEvent>) {
        start()
        let (stream, continuation) = AsyncStream.makeStream(of: LiveEvent.self, bufferingPolicy: .bufferingNewest(Self.subscriberBuffer))
        let id = UUID()
        let missed = state.withLock { state -> [LiveEvent] in
            state.subscribers[id] = continuation
            guard let lastSequence else { return [] }
            return state.recent.filter { $0.sequence > lastSequence }
        }
        continuation.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) } }
        return (missed, stream)
    }

    /// Subscribes, then reads (with `read`) the state the events will change, so no change
    /// falls between the two. A read that fails or finds nothing ends the subscription at
    /// once (otherwise it would stay registered, and buffered, for the life of the process);
    /// nil when it found nothing.
    package func subscribe<Value>(after lastSequence: Int?, thenRead read: () async throws -> Value?) async throws -> Watch<Value>? {
        // Taken before the subscriber is registered: if the feed is still on this connection
        // later, it was on it all along, so no event of it was lost.
        let connection = self.connection
        let (missed, events) = subscribe(after: lastSequence)
        let value: Value?
        do {
            value = try await read()
        } catch {
            Self.discard(events)
            throw error
        }
        guard let value else {
            Self.discard(events)
            return nil
        }
        return Watch(missed: missed, events: events, value: value, connection: connection)
    }

    /// A subscription that began with a read of the state its events change.
    package struct Watch<Value> {
        /// The events after the caller's last sequence that the ring still held.
        package let missed: [LiveEvent]
        /// Every event from the subscription on.
        package let events: AsyncStream<LiveEvent>
        /// What the read found, after the subscription began.
        package let value: Value
        /// The feed's ``EventFanOut/connection`` when the subscription began. Events reach the
        /// subscriber without a gap only while the feed stays on that connection: when it was
        /// nil (the broker was down, or the feed still connecting) or has changed, events may
        /// have passed unseen, and the state must be read again once the feed is connected.
        package let connection: Int?
    }

    /// The feed's live connection: a number that changes on every reconnect, nil while it is
    /// not connected. See ``Watch/connection``.
    package var connection: Int? { consumer.withLock { $0.consumer?.connection } }

    /// Ends a subscription nobody will read: iterating its stream and cancelling that removes
    /// the subscriber.
    private static func discard(_ events: AsyncStream<LiveEvent>) {
        Task { for await _ in events {} }.cancel()
    }

    /// Pages open on this process now.
    package var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    package func run() async throws {
        await withGracefulShutdownHandler {
            for await _ in started { break }
            guard let consumer = consumer.withLock({ $0.consumer }) else { return }
            for await delivery in consumer.deliveries {
                publish(delivery.body)
                try? await consumer.ack(delivery)
            }
        } onGracefulShutdown: {
            let running = self.consumer.withLock { box -> AMQPConsumer? in
                box.stopped = true
                return box.consumer
            }
            self.startedSignal.finish()
            if let running { Task { await running.stop() } }
        }
        // Finished outside the lock: finishing runs each stream's termination handler, which
        // takes the lock itself (a recursive lock is a crash).
        let open = state.withLock { state in
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for continuation in open { continuation.finish() }
    }

    /// Hands one event body to every subscriber; a body that is not an event is skipped, and an
    /// event seen already (an outbox duplicate) is not shown twice.
    func publish(_ body: [UInt8]) {
        guard let envelope = try? EventEnvelope.decode(body) else {
            logger.debug("live feed skipped a message that is not an event")
            return
        }
        state.withLock { state in
            guard state.seenIds[envelope.id] == nil else { return }
            state.sequence += 1
            let event = LiveEvent(
                sequence: state.sequence, type: envelope.type, orderId: envelope.orderId, status: envelope.eventType?.announcedOrderStatus?.rawValue,
                occurredAt: envelope.occurredAt)
            state.seenIds[envelope.id] = state.sequence
            state.recent.append(event)
            if state.recent.count > Self.replayCapacity {
                state.recent.removeFirst(state.recent.count - Self.replayCapacity)
                let oldest = state.recent[0].sequence
                state.seenIds = state.seenIds.filter { $0.value >= oldest }
            }
            for continuation in state.subscribers.values { continuation.yield(event) }
        }
    }
}

extension EventFanOut.Watch: Sendable where Value: Sendable {}
