import AMQP
import Domain
import Foundation
import Logging
import Metrics
import Observability
import Postgres
import Tracing

/// A delivery decoded for its handler.
struct DecodedDelivery<Input: Sendable>: Sendable {
    let delivery: AMQPDelivery
    let event: EventEnvelope
    let input: Input
}

extension Worker {
    /// Handles what one runner took: redeliveries one at a time (a message that crashed a
    /// worker must not drag its batch-mates towards the delivery limit), undecodable ones
    /// straight to their failure route, those that may not share a transaction
    /// (``EventHandler/batches(_:)``: their outside call is not idempotent) one at a time
    /// too, and the rest in one transaction when there are several. If that transaction
    /// fails, every message of it is redone on its own, so a poison message is retried or
    /// dead-lettered alone and the others succeed.
    func processBatch(_ deliveries: [AMQPDelivery], consumer: AMQPConsumer, router: FailureRouter) async {
        // One delivery (always so for a role that does not batch): nothing to share, and
        // `process` decodes it itself; decoding it here first would be done twice.
        guard deliveries.count > 1 else {
            for delivery in deliveries { await process(delivery, consumer: consumer, router: router) }
            return
        }
        var batch: [DecodedDelivery<Handler.Input>] = []
        for delivery in deliveries {
            guard !delivery.redelivered, let decoded = decode(delivery), handler.batches(decoded.input) else {
                await process(delivery, consumer: consumer, router: router)
                continue
            }
            batch.append(decoded)
        }
        guard batch.count > 1 else {
            for item in batch { await process(item.delivery, consumer: consumer, router: router) }
            return
        }
        // While the database is unavailable, nothing starts: the deliveries wait in hand.
        guard await breaker.waitUntilAvailable() == .available else {
            logger.info("shutting down while the database is unavailable; the broker keeps the messages")
            return
        }
        do {
            try await applyBatch(batch, consumer: consumer)
        } catch let error as PostgresError where error.code == .poolClosed {
            logger.info("shutting down; the broker keeps the messages", metadata: ["error": "\(error.message)"])
        } catch {
            logger.debug(
                "a batch failed; redoing its messages one at a time", metadata: ["error": "\(error)", "batch.size": "\(batch.count)"])
            if let error = error as? PostgresError, error.isUnavailable { breaker.reportUnavailable(error) }
            for item in batch { await process(item.delivery, consumer: consumer, router: router) }
        }
    }

    /// The delivery's envelope and routed input, or nil when it cannot be handled here (the
    /// one-at-a-time path then routes it to its failure queue with the reason).
    private func decode(_ delivery: AMQPDelivery) -> DecodedDelivery<Handler.Input>? {
        guard let event = try? EventEnvelope.decode(delivery.body), event.schemaVersion == EventEnvelope.currentSchemaVersion,
            let type = event.eventType, let input = Handler.Input(type)
        else { return nil }
        return DecodedDelivery(delivery: delivery, event: event, input: input)
    }

    /// One transaction for the batch: one inbox statement claims the fresh messages, the
    /// handler prepares (takes its locks in one order, and may decide the batch at once) and
    /// applies each fresh one in arrival order, one outbox statement appends everything they
    /// emit. After the commit the events go to the publisher and the deliveries are acked
    /// together.
    private func applyBatch(_ batch: [DecodedDelivery<Handler.Input>], consumer: AMQPConsumer) async throws {
        let started = ContinuousClock.now
        let queue = names.queue(role)
        let emitted = try await pool.withTransaction { db -> [[OutboxStore.OutboxEvent]?] in
            try db.preferGenericPlans()
            let claimed = try await InboxStore.claim(consumer: handler.consumerName, messageIDs: batch.map(\.event.id), on: db)
            var seen = Set<UUID>()
            let fresh = batch.map { claimed.contains($0.event.id) && seen.insert($0.event.id).inserted }
            let prepared = try await handler.prepare(zip(batch, fresh).filter(\.1).map { (input: $0.0.input, event: $0.0.event) }, in: db)
            var perMessage: [[EventEnvelope]?] = []
            for (item, isFresh) in zip(batch, fresh) {
                guard isFresh else {
                    perMessage.append(nil)
                    continue
                }
                perMessage.append(try await handleTraced(item, prepared, db))
            }
            let appended = try await OutboxStore.append(perMessage.flatMap { $0 ?? [] }, exchange: names.eventsExchange, on: db)
            // Back to the message that emitted each, in order.
            var rest = appended[...]
            return perMessage.map { events in
                events.map { events in
                    defer { rest = rest.dropFirst(events.count) }
                    return Array(rest.prefix(events.count))
                }
            }
        }
        for (item, outgoing) in zip(batch, emitted) {
            let labels = [("queue", queue), ("type", item.event.type)]
            // Counted once committed: a failed batch's messages are counted by the redo.
            Counter(label: "messages_consumed_total", dimensions: labels).increment()
            if outgoing == nil { Counter(label: "messages_duplicate_total", dimensions: labels).increment() }
            status.countHandled()
            EmporiumMetrics.record(Metrics.Timer(label: "message_handler_duration_seconds", dimensions: labels), since: started)
            logOutcome(outgoing) { messageLogger(item.delivery, item.event) }
        }
        // The ack does not wait for the broker: the outgoing rows are committed.
        outbox.publishSoon(emitted.flatMap { $0 ?? [] })
        do {
            try await consumer.ack(batch.map(\.delivery))
            for item in batch { Counter(label: "messages_acked_total", dimensions: [("queue", queue), ("type", item.event.type)]).increment() }
        } catch {
            // The effects are committed; the broker redelivers and the inbox skips them.
            logger.warning("ack failed after commit; the redeliveries will be skipped", metadata: ["error": "\(error)", "batch.size": "\(batch.count)"])
        }
    }

    /// Runs the handler for one message of a batch in its own consumer span, continuing the
    /// publisher's trace; what it emits continues that span's trace.
    private func handleTraced(_ item: DecodedDelivery<Handler.Input>, _ prepared: Handler.Prepared, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        let parent = EmporiumTracing.context(continuing: item.event.traceparent ?? item.delivery.properties.headers["traceparent"]?.stringValue)
        return try await withSpan("\(item.event.type) process", context: parent, ofKind: .consumer) { span in
            span.attributes["messaging.system"] = "rabbitmq"
            span.attributes["messaging.destination.name"] = names.queue(role)
            span.attributes["messaging.message.id"] = item.event.id.uuidString
            if let orderId = item.event.orderId { span.attributes["emporium.order.id"] = orderId.uuidString }
            if let replays = item.delivery.properties.headers[DeadLetterHeader.replayCount]?.intValue {
                span.attributes["emporium.replay.count"] = Int(replays)
            }
            let traceparent = EmporiumTracing.currentTraceparent()
            return try await handler.handle(item.input, item.event, prepared: prepared, in: db).map { next in
                var next = next
                if let traceparent { next.traceparent = traceparent }
                return next
            }
        }
    }

    /// The logger for one message: its queue, id, order, trace and type.
    func messageLogger(_ delivery: AMQPDelivery, _ event: EventEnvelope?) -> Logger {
        var log = logger
        log[metadataKey: "amqp.queue"] = "\(names.queue(role))"
        log[metadataKey: "message.id"] = "\(delivery.properties.messageID ?? "-")"
        guard let event else { return log }
        if let orderId = event.orderId { log[metadataKey: "order.id"] = "\(orderId)" }
        if let traceparent = event.traceparent {
            log[metadataKey: "trace.parent"] = "\(traceparent)"
            if let trace = traceID(ofTraceparent: traceparent) { log[metadataKey: "trace.id"] = "\(trace)" }
        }
        log[metadataKey: "event.type"] = "\(event.type)"
        // A replayed dead letter says so: same message id and trace, and how many replays.
        if let replays = delivery.properties.headers[DeadLetterHeader.replayCount]?.intValue { log[metadataKey: "replay.count"] = "\(replays)" }
        return log
    }

    /// Per message at debug; at info one line per order status change (the costliest part of
    /// a log line is writing it, and a saga handles ~6.6 messages per order). `outgoing` nil:
    /// the message was a duplicate.
    /// The message's logger is built only when a line is written.
    func logOutcome(_ outgoing: [OutboxStore.OutboxEvent]?, log makeLog: () -> Logger) {
        let announcing = outgoing?.map(\.event).filter { $0.eventType?.announcedOrderStatus != nil } ?? []
        guard logger.logLevel <= .debug || !announcing.isEmpty else { return }
        let log = makeLog()
        guard let outgoing else {
            log.debug("duplicate event skipped")
            return
        }
        log.debug("event handled", metadata: ["emitted": "\(outgoing.map(\.event.type))"])
        for next in announcing {
            guard let status = next.eventType?.announcedOrderStatus else { continue }
            log.info("order status changed", metadata: [LogKeys.orderStatus: "\(status.rawValue)", "emitted": "\(next.type)"])
        }
    }
}
