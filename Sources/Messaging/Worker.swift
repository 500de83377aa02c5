import AMQP
import Foundation
import Logging
import Postgres
import ServiceLifecycle

/// A role's business logic: applies one event inside the worker's transaction and returns
/// the events to emit, which are written to the outbox in that same transaction.
public protocol EventHandler: Sendable {
    /// The inbox consumer name (one per role).
    var consumerName: String { get }
    /// Applies `event`. Throw a ``PermanentFailure`` for a message that can never succeed;
    /// other errors are classified by ``FailureClass/of(_:)``.
    func handle(_ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope]
}

/// A failure that retrying cannot fix (bad payload, unknown type, broken business rule).
public struct PermanentFailure: Error, CustomStringConvertible {
    public let description: String
    /// Creates the failure with an operator-facing reason.
    public init(_ description: String) { self.description = description }
}

/// A failure of an outside dependency that may pass (provider down, timeout).
public struct TransientFailure: Error, CustomStringConvertible {
    public let description: String
    /// Creates the failure with an operator-facing reason.
    public init(_ description: String) { self.description = description }
}

/// Whether a failed message should be retried.
public enum FailureClass: String, Sendable {
    case transient, permanent

    /// Database and broker outages, serialization failures, deadlocks and
    /// ``TransientFailure`` are transient; everything else is permanent.
    public static func of(_ error: any Error) -> FailureClass {
        if let error = error as? PostgresError { return error.isTransient ? .transient : .permanent }
        if let error = error as? AMQPError { return error.isTransient ? .transient : .permanent }
        if error is TransientFailure { return .transient }
        return .permanent
    }
}

/// Consumes a role's queue and runs its handler: inbox dedup, effects and outgoing outbox
/// rows in one transaction, publish after commit, ack after that.
public struct Worker: Service {
    let role: WorkerRole
    let handler: any EventHandler
    let names: MessagingNames
    let pool: PostgresPool
    let amqp: AMQPConfiguration
    let outbox: OutboxPublisher
    let prefetch: UInt16
    let logger: Logger

    /// Creates the worker; nothing connects until ``run()``.
    public init(role: WorkerRole, handler: any EventHandler, names: MessagingNames, pool: PostgresPool, amqp: AMQPConfiguration, outbox: OutboxPublisher, prefetch: UInt16 = 16, logger: Logger) {
        self.role = role
        self.handler = handler
        self.names = names
        self.pool = pool
        self.amqp = amqp
        self.outbox = outbox
        self.prefetch = prefetch
        self.logger = logger
    }

    public func run() async throws {
        var options = AMQPConsumer.Options()
        options.prefetch = prefetch
        options.topology = names.topology
        options.consumerTag = "emporium-\(role.rawValue)"
        let consumer = AMQPConsumer(configuration: amqp, queue: names.queue(role), options: options, logger: logger)
        logger.info("worker consuming", metadata: ["amqp.queue": "\(names.queue(role))"])
        await withGracefulShutdownHandler {
            // Prefetch bounds how many deliveries are in flight, so one task each is bounded too.
            await withDiscardingTaskGroup { group in
                for await delivery in consumer.deliveries {
                    group.addTask { await process(delivery, consumer: consumer) }
                }
            }
        } onGracefulShutdown: {
            Task { await consumer.stop() }
        }
    }

    /// Handles one delivery to the end: ack, retry or dead-letter.
    func process(_ delivery: AMQPDelivery, consumer: AMQPConsumer) async {
        var log = logger
        log[metadataKey: "amqp.queue"] = "\(names.queue(role))"
        log[metadataKey: "message.id"] = "\(delivery.properties.messageID ?? "-")"
        let event: EventEnvelope
        do {
            event = try EventEnvelope.decode(delivery.body)
            guard event.schemaVersion == EventEnvelope.currentSchemaVersion else {
                throw PermanentFailure("unsupported schema_version \(event.schemaVersion)")
            }
        } catch {
            log.error("undecodable message dead-lettered", metadata: ["error": "\(error)"])
            try? await consumer.reject(delivery, requeue: false)
            return
        }
        if let orderId = event.orderId { log[metadataKey: "order.id"] = "\(orderId)" }
        do {
            let outgoing = try await pool.withTransaction { db -> [EventEnvelope]? in
                guard try await Inbox.claim(consumer: handler.consumerName, messageID: event.id, on: db) else { return nil }
                let events = try await handler.handle(event, in: db)
                for next in events { try await Outbox.append(next, exchange: names.eventsExchange, on: db) }
                return events
            }
            if let outgoing {
                log.debug("event handled", metadata: ["event.type": "\(event.type)", "emitted": "\(outgoing.map(\.type))"])
                await outbox.publishCommitted(outgoing)
            } else {
                log.info("duplicate event skipped", metadata: ["event.type": "\(event.type)"])
            }
            try await consumer.ack(delivery)
        } catch {
            switch FailureClass.of(error) {
            case .transient:
                log.warning("transient failure; message requeued", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
                try? await consumer.nack(delivery, requeue: true)
            case .permanent:
                log.error("permanent failure; message dead-lettered", metadata: ["error": "\(error)"])
                try? await consumer.reject(delivery, requeue: false)
            }
        }
    }
}
