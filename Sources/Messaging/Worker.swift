import AMQP
import Domain
import Foundation
import Logging
import Metrics
import Observability
import Postgres
import ServiceLifecycle
import Tracing

/// A role's business logic: applies one event inside the worker's transaction and returns
/// the events to emit, which are written to the outbox in that same transaction.
///
/// `Input` is the role's routing table (``WorkerRole/consumes``): the topology binds the
/// role's queue to exactly its event types, the worker refuses any other type before the
/// handler runs, and `handle` switches over `Input` exhaustively, so there is no default case.
package protocol EventHandler: Sendable {
    /// The events this handler's role receives.
    associatedtype Input: RoleInput
    /// The role whose queue this handler consumes.
    static var role: WorkerRole { get }
    /// Applies `event`, which is of type `input`. Throw a ``PermanentFailure`` for a message
    /// that can never succeed; other errors are classified by ``FailureClass/of(_:)``.
    func handle(_ input: Input, _ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope]
    /// What ``prepare(_:in:)`` hands to each message's ``handle(_:_:prepared:in:)``: work
    /// done once for the whole batch (`Void` for a handler that prepares nothing).
    associatedtype Prepared: Sendable = Void
    /// Runs once per batch of several events, in the batch's transaction, before any of them
    /// is handled. A handler whose events lock shared rows takes every lock the batch needs
    /// here, in one order, so that two batches in flight wait for each other instead of
    /// deadlocking; one that can decide the whole batch in a few statements does so here
    /// and returns the decisions. The default does nothing.
    func prepare(_ batch: [(input: Input, event: EventEnvelope)], in db: PostgresConnection) async throws -> Prepared
    /// Applies one message of a prepared batch. The default ignores `prepared` and calls
    /// ``handle(_:_:in:)``.
    func handle(_ input: Input, _ event: EventEnvelope, prepared: Prepared, in db: PostgresConnection) async throws -> [EventEnvelope]
    /// Whether a message of this kind may share a transaction with others. When a batch fails,
    /// each message is redone on its own, and its healthy batch-mates call out a second time:
    /// one whose outside call is not idempotent (a mail) may not; one whose call carries an
    /// idempotency key the other side honours (a charge) may. Messages that may not go one at
    /// a time, and a role whose messages mostly call out runs more batches at once
    /// (``Worker`` `concurrency`). An instance method, because
    /// whether a message calls out can depend on how the handler was configured (a
    /// notification channel that mails, or one that only records).
    func batches(_ input: Input) -> Bool
    /// Whether a message of this kind may be held briefly for company (``Worker`` `batchWait`):
    /// nobody waits on its outcome (a notification, the bookkeeping of a confirmed order's
    /// reservation), and it may share a transaction. Messages on the saga's path may not:
    /// every step they wait would delay the order. A short batch that holds one of them is
    /// handed out at once, and takes the waiting ones along.
    func mayWait(_ input: Input) -> Bool
}

extension EventHandler {
    /// The inbox consumer name: the role's.
    package var consumerName: String { Self.role.rawValue }

    package func handle(_ input: Input, _ event: EventEnvelope, prepared: Prepared, in db: PostgresConnection) async throws -> [EventEnvelope] {
        try await handle(input, event, in: db)
    }

    package func batches(_ input: Input) -> Bool { true }

    package func mayWait(_ input: Input) -> Bool { false }

    /// Whether any message of the role may share a transaction: else the worker takes one at a time.
    var batchesAny: Bool { Input.allCases.contains { batches($0) } }

    /// Whether `delivery` may wait for company: a first delivery of a kind that
    /// ``mayWait(_:)`` and ``batches(_:)``, known by its routing key (the event type).
    func mayWait(_ delivery: AMQPDelivery) -> Bool {
        guard !delivery.redelivered, let type = EventType(rawValue: delivery.routingKey), let input = Input(type) else { return false }
        return batches(input) && mayWait(input)
    }
}

extension EventHandler where Prepared == Void {
    package func prepare(_ batch: [(input: Input, event: EventEnvelope)], in db: PostgresConnection) async throws {}
}

/// A failure that retrying cannot fix (bad payload, unknown type, broken business rule).
package struct PermanentFailure: Error, CustomStringConvertible {
    package let description: String
    /// Creates the failure with an operator-facing reason.
    package init(_ description: String) { self.description = description }
}

/// A failure of an outside dependency that may pass (provider down, timeout).
package struct TransientFailure: Error, CustomStringConvertible {
    package let description: String
    /// Creates the failure with an operator-facing reason.
    package init(_ description: String) { self.description = description }
}

/// Whether a failed message should be retried.
package enum FailureClass: String, Sendable {
    case transient, permanent

    /// Database and broker outages, serialization failures, deadlocks and
    /// ``TransientFailure`` are transient; everything else is permanent.
    package static func of(_ error: any Error) -> FailureClass {
        if let error = error as? PostgresError { return error.isTransient ? .transient : .permanent }
        if let error = error as? AMQPError { return error.isTransient ? .transient : .permanent }
        if error is TransientFailure { return .transient }
        return .permanent
    }
}

/// Consumes a role's queue and runs its handler: inbox dedup, effects and outgoing outbox
/// rows in one transaction, publish after commit, ack after that. Under load, deliveries that
/// wait are taken in batches of up to `batchSize`, applied in one transaction and acked
/// together (``processBatch(_:consumer:router:)``); a batch that fails is redone one message
/// at a time, so only the guilty message is retried or dead-lettered. A failure is published,
/// with confirms, to the next delay queue (transient, attempts left) or to the dead-letter
/// queue (permanent, or attempts exhausted) before the original is acked, so a message is
/// never lost and never loops. On graceful shutdown the worker stops taking deliveries,
/// finishes those in hand within `drainTimeout`, and leaves the rest to the broker.
package struct Worker<Handler: EventHandler>: Service {
    var role: WorkerRole { Handler.role }
    let handler: Handler
    let names: MessagingNames
    let policy: QueuePolicy
    let pool: PostgresPool
    let amqp: AMQPConfiguration
    let outbox: OutboxPublisher
    let prefetch: UInt16
    /// Most deliveries applied in one transaction.
    let batchSize: Int
    /// Batches in flight at once (each on its own pooled connection).
    let concurrency: Int
    /// How long a short batch of messages that ``EventHandler/mayWait(_:)`` is held for
    /// company (``DeliveryBuffer``); zero: never.
    let batchWait: Duration
    let drainTimeout: Duration
    let logger: Logger
    /// Subscription and progress, for the health endpoint.
    package let status: WorkerStatus
    /// Opens while the database is unavailable: deliveries are held, not failed.
    package let breaker: DependencyBreaker

    /// How many times in a row one delivery may fail for want of the database while the
    /// prober finds the database answering in between, before the failure is counted as the
    /// message's own (a statement that always times out, say) and retried or dead-lettered
    /// as usual. An outage of any length costs no attempt: its retries wait for the prober.
    static var heldRetryLimit: Int { 10 }

    /// Creates the worker; nothing connects until ``run()``.
    package init(
        handler: Handler, names: MessagingNames, policy: QueuePolicy, pool: PostgresPool, amqp: AMQPConfiguration,
        outbox: OutboxPublisher, prefetch: UInt16 = 64, batchSize: Int = 32, concurrency: Int = 2, batchWait: Duration = .zero,
        drainTimeout: Duration = .seconds(10),
        status: WorkerStatus = WorkerStatus(), breaker: DependencyBreaker? = nil, logger: Logger
    ) {
        self.handler = handler
        self.names = names
        self.policy = policy
        self.pool = pool
        self.amqp = amqp
        self.outbox = outbox
        self.prefetch = prefetch
        self.batchSize = handler.batchesAny ? max(1, batchSize) : 1
        self.concurrency = max(1, concurrency)
        self.batchWait = self.batchSize > 1 ? max(.zero, batchWait) : .zero
        self.drainTimeout = drainTimeout
        self.status = status
        self.logger = logger
        self.breaker = breaker ?? .postgres(pool, logger: logger)
        status.attach(self.breaker)
    }

    package func run() async throws {
        var options = AMQPConsumer.Options()
        options.prefetch = prefetch
        options.topology = names.topology(policy: policy)
        options.consumerTag = "emporium-\(role.rawValue)"
        let consumer = AMQPConsumer(configuration: amqp, queue: names.queue(role), options: options, logger: logger)
        status.attach(consumer)
        let status = self.status
        let router = FailureRouter(names: names, policy: policy, role: role)
        logger.info("worker consuming", metadata: ["amqp.queue": "\(names.queue(role))"])
        let drainTimeout = self.drainTimeout
        let logger = self.logger
        let breaker = self.breaker
        let handler = self.handler
        let buffer = DeliveryBuffer(batchSize: batchSize, batchWait: batchWait) { handler.mayWait($0) }
        await withGracefulShutdownHandler {
            // `concurrency` runners take what has arrived, up to a batch each (a short one
            // after `batchWait`); prefetch bounds how many deliveries wait for them.
            await withDiscardingTaskGroup { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        while let deliveries = await buffer.take() {
                            await processBatch(deliveries, consumer: consumer, router: router)
                        }
                    }
                }
                for await delivery in consumer.deliveries { buffer.push(delivery) }
                buffer.finish()
            }
        } onGracefulShutdown: {
            Task {
                logger.info("draining: no new deliveries; finishing those in hand")
                status.markDraining()
                await consumer.cancel()
                try? await Task.sleep(for: drainTimeout)
                // Deliveries held for an unavailable database stop waiting; whatever is still
                // unfinished goes back to the queue with the connection.
                breaker.stop()
                await consumer.stop()
            }
        }
        await consumer.stop()
    }

    /// Handles one delivery to the end: ack, retry or dead-letter.
    func process(_ delivery: AMQPDelivery, consumer: AMQPConsumer, router: FailureRouter) async {
        var log = messageLogger(delivery, nil)
        let event: EventEnvelope
        let input: Handler.Input
        do {
            event = try EventEnvelope.decode(delivery.body)
            guard event.schemaVersion == EventEnvelope.currentSchemaVersion else {
                throw PermanentFailure("unsupported schema_version \(event.schemaVersion)")
            }
            guard let type = event.eventType, let known = Handler.Input(type) else {
                throw PermanentFailure("unknown event type \(event.type) for the \(role.rawValue) worker")
            }
            input = known
        } catch {
            let reason = (error as? PermanentFailure)?.description ?? "undecodable message: \(error)"
            let type = (try? EventEnvelope.decode(delivery.body).type) ?? "undecodable"
            Counter(label: "messages_consumed_total", dimensions: [("queue", names.queue(role)), ("type", type)]).increment()
            await fail(delivery, reason: reason, failure: .permanent, consumer: consumer, router: router, log: log)
            return
        }
        log = messageLogger(delivery, event)
        let labels = [("queue", names.queue(role)), ("type", event.type)]
        Counter(label: "messages_consumed_total", dimensions: labels).increment()
        let started = ContinuousClock.now
        // One consumer span per message, continuing the publisher's trace (a no-op without a tracer).
        let parent = EmporiumTracing.context(continuing: event.traceparent ?? delivery.properties.headers["traceparent"]?.stringValue)
        await withSpan("\(event.type) process", context: parent, ofKind: .consumer) { span in
            span.attributes["messaging.system"] = "rabbitmq"
            span.attributes["messaging.destination.name"] = names.queue(role)
            span.attributes["messaging.message.id"] = event.id.uuidString
            if let orderId = event.orderId { span.attributes["emporium.order.id"] = orderId.uuidString }
            // A replay continues the dead letter's trace; the span says it is one.
            if let replays = delivery.properties.headers[DeadLetterHeader.replayCount]?.intValue { span.attributes["emporium.replay.count"] = Int(replays) }
            var heldRetries = 0
            while true {
                // While the database is unavailable, nothing starts: the delivery waits in hand.
                guard await breaker.waitUntilAvailable() == .available else {
                    log.info("shutting down while the database is unavailable; the broker keeps the message")
                    return
                }
                do {
                    try await apply(input, event, delivery: delivery, consumer: consumer, labels: labels, started: started, log: log)
                    return
                } catch let error as PostgresError where error.code == .poolClosed {
                    // The process is stopping: leave the message unacknowledged for the broker.
                    log.info("shutting down; the broker keeps the message", metadata: ["error": "\(error.message)"])
                    return
                } catch let error as PostgresError where error.isUnavailable && heldRetries < Self.heldRetryLimit {
                    heldRetries += 1
                    log.debug("database unavailable; holding the message", metadata: ["error": "\(error.message)", "held_retries": "\(heldRetries)"])
                    breaker.reportUnavailable(error)
                } catch {
                    await fail(delivery, reason: "\(error)", failure: FailureClass.of(error), consumer: consumer, router: router, log: log)
                    return
                }
            }
        }
    }

    /// Applies one event in a transaction (inbox claim, effects, outgoing outbox rows), then
    /// hands the outgoing events to the publisher and acks. Throws what the transaction threw.
    func apply(
        _ input: Handler.Input, _ event: EventEnvelope, delivery: AMQPDelivery, consumer: AMQPConsumer, labels: [(String, String)],
        started: ContinuousClock.Instant, log: Logger
    ) async throws {
        let outgoing = try await pool.withTransaction { db -> [OutboxStore.OutboxEvent]? in
            try db.preferGenericPlans()
            guard try await InboxStore.claim(consumer: handler.consumerName, messageID: event.id, on: db) else { return nil }
            // What this message causes continues its trace, as children of this span.
            let traceparent = EmporiumTracing.currentTraceparent()
            let events = try await handler.handle(input, event, in: db).map { next in
                var next = next
                if let traceparent { next.traceparent = traceparent }
                return next
            }
            return try await OutboxStore.append(events, exchange: names.eventsExchange, on: db)
        }
        status.countHandled()
        if outgoing == nil { Counter(label: "messages_duplicate_total", dimensions: labels).increment() }
        EmporiumMetrics.record(Metrics.Timer(label: "message_handler_duration_seconds", dimensions: labels), since: started)
        logOutcome(outgoing) { log }
        // The ack does not wait for the broker: the outgoing rows are committed.
        if let outgoing { outbox.publishSoon(outgoing) }
        do {
            try await consumer.ack(delivery)
            Counter(label: "messages_acked_total", dimensions: labels).increment()
        } catch {
            // The effects are committed; the broker redelivers and the inbox skips it.
            log.warning("ack failed after commit; the redelivery will be skipped", metadata: ["error": "\(error)"])
        }
    }

    /// Publishes the failed delivery to its retry or dead-letter queue with confirms, then
    /// acks it. If that publish fails, the delivery is requeued instead: never lost.
    func fail(_ delivery: AMQPDelivery, reason: String, failure: FailureClass, consumer: AMQPConsumer, router: FailureRouter, log: Logger) async {
        let (route, message) = router.route(delivery, error: reason, failure: failure)
        let type = (try? EventEnvelope.decode(delivery.body).type) ?? "undecodable"
        let labels = [("queue", names.queue(role)), ("type", type)]
        do {
            try await outbox.publisher.publish(message)
            switch route {
            case .retry(let queue, let delay):
                Counter(label: "messages_retried_total", dimensions: labels).increment()
                log.warning("transient failure; retrying later", metadata: ["error": "\(reason)", "retry.queue": "\(queue)", "retry.delay": "\(delay)"])
            case .deadLetter(let queue):
                Counter(label: "messages_dead_lettered_total", dimensions: labels).increment()
                log.error("message dead-lettered", metadata: ["error": "\(reason)", "error.class": "\(failure.rawValue)", "dlq": "\(queue)"])
            }
            try? await consumer.ack(delivery)
        } catch {
            log.error("cannot route a failed message; requeueing it", metadata: ["error": "\(error)", "cause": "\(reason)"])
            try? await Task.sleep(for: .milliseconds(500))
            try? await consumer.nack(delivery, requeue: true)
        }
    }
}
