import AMQP
import Foundation
import Logging
import Metrics
import Postgres
import ServiceLifecycle
import Synchronization

/// Writes events into the `outbox` table inside the caller's transaction.
public enum Outbox {
    /// Appends `event` to the outbox in the transaction running on `db`.
    public static func append(_ event: EventEnvelope, exchange: String, on db: PostgresConnection) async throws {
        try await db.query(
            """
            INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, trace_parent, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            [event.id, event.type, exchange, event.type, event.orderId,
             PostgresJSON(data: Data(try event.encoded())), event.traceparent, event.occurredAt])
    }

    /// The AMQP message for an event: the envelope as the body, its id as `message_id`,
    /// its type as routing key and `type`, persistent and mandatory.
    public static func message(for event: EventEnvelope, body: [UInt8], exchange: String) -> AMQPOutgoingMessage {
        var headers: AMQPTable = ["schema_version": .int(Int64(event.schemaVersion))]
        if let traceparent = event.traceparent { headers["traceparent"] = .string(traceparent) }
        if let orderId = event.orderId { headers["order_id"] = .string(orderId.uuidString.lowercased()) }
        return AMQPOutgoingMessage(
            exchange: exchange, routingKey: event.type, body: body,
            properties: AMQPProperties(
                messageID: event.id.uuidString.lowercased(), contentType: "application/json", type: event.type,
                timestamp: event.occurredAt, headers: headers, persistent: true, appID: "emporium"),
            mandatory: true)
    }
}

/// Publishes committed outbox rows with publisher confirms and marks them published, only
/// after the broker confirmed them. Failures are logged and left to the relay.
public struct OutboxPublisher: Sendable {
    /// The confirmed publisher underneath (workers also route failed messages through it).
    public let publisher: AMQPPublisher
    let pool: PostgresPool
    let exchange: String
    /// The process's logger.
    public let logger: Logger
    /// Events handed over by ``publishSoon(_:)``, published in batches by the relay.
    let committed = CommittedEvents()

    /// Creates a publisher for events on `exchange`.
    public init(publisher: AMQPPublisher, pool: PostgresPool, exchange: String, logger: Logger) {
        self.publisher = publisher
        self.pool = pool
        self.exchange = exchange
        self.logger = logger
    }

    /// Publishes events that were just committed to the outbox; returns how many the broker
    /// confirmed (and were marked). Never throws: the relay retries what is left.
    @discardableResult
    public func publishCommitted(_ events: [EventEnvelope]) async -> Int {
        guard !events.isEmpty else { return 0 }
        do {
            let messages = try events.map { Outbox.message(for: $0, body: try $0.encoded(), exchange: exchange) }
            return try await publishAndMark(ids: events.map(\.id), messages: messages)
        } catch {
            logger.warning("publishing after commit failed; the outbox relay will retry", metadata: ["error": "\(error)"])
            return 0
        }
    }

    /// Hands events that were just committed to the outbox to the ``OutboxRelay``'s batch
    /// publisher and returns at once, so an HTTP response or an ack never waits for the
    /// broker. The batch publisher sends everything handed over meanwhile in one confirm
    /// window and marks it with one statement. What it cannot publish stays unpublished in
    /// the table, where the relay's poll finds it: the outbox row, not this call, is the promise.
    public func publishSoon(_ events: [EventEnvelope]) {
        committed.add(events)
    }

    /// Publishes what ``publishSoon(_:)`` collected until ``CommittedEvents/finish()``,
    /// then what is left.
    func publishCommittedBatches() async {
        for await _ in committed.signals {
            while case let batch = committed.take(max: Self.batchLimit), !batch.isEmpty {
                await publishCommitted(batch)
            }
        }
        while case let batch = committed.take(max: Self.batchLimit), !batch.isEmpty {
            await publishCommitted(batch)
        }
    }

    /// The most events one batch publishes (and one UPDATE marks).
    static let batchLimit = 512

    /// Publishes `messages` and marks the confirmed ones' outbox rows (by `ids`).
    func publishAndMark(ids: [UUID], messages: [AMQPOutgoingMessage], on db: PostgresConnection? = nil) async throws -> Int {
        let outcomes = try await publisher.publish(messages)
        var confirmed: [UUID] = []
        var failed: [(UUID, String)] = []
        for (id, outcome) in zip(ids, outcomes) {
            switch outcome {
            case .confirmed: confirmed.append(id)
            case .returned(let code, let text): failed.append((id, "returned \(code) \(text)"))
            case .nacked: failed.append((id, "nacked by the broker"))
            }
        }
        let mark = "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY($1) AND published_at IS NULL"
        if !confirmed.isEmpty {
            if let db { try await db.query(mark, [confirmed]) } else { try await pool.query(mark, [confirmed]) }
        }
        for (id, reason) in failed {
            logger.error("outbox event not accepted by the broker", metadata: ["message.id": "\(id)", "error": "\(reason)"])
            let note = "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1"
            if let db { try await db.query(note, [id, reason]) } else { try await pool.query(note, [id, reason]) }
        }
        return confirmed.count
    }
}

/// Events committed by this process and waiting to be published, shared by the copies of an
/// ``OutboxPublisher``. Bounded: past `limit` events, new ones are left to the relay's poll
/// (their rows are committed), so a broker outage cannot grow memory without end.
final class CommittedEvents: Sendable {
    private let pending = Mutex<[EventEnvelope]>([])
    private let signal: AsyncStream<Void>.Continuation
    /// Yields after events were added (coalesced: one pending signal at most).
    let signals: AsyncStream<Void>
    let limit: Int

    init(limit: Int = 10_000) {
        self.limit = limit
        (signals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func add(_ events: [EventEnvelope]) {
        guard !events.isEmpty else { return }
        pending.withLock { pending in
            pending.append(contentsOf: events.prefix(max(0, limit - pending.count)))
        }
        signal.yield()
    }

    func take(max: Int) -> [EventEnvelope] {
        pending.withLock { pending in
            let batch = Array(pending.prefix(max))
            pending.removeFirst(batch.count)
            return batch
        }
    }

    /// Ends ``signals``; the batch publisher publishes what is left and returns.
    func finish() { signal.finish() }
}

/// Claims outbox rows left unpublished (the writer crashed between commit and publish, or
/// the broker was down) and publishes them. Runs in every process that writes events.
///
/// Rows are claimed with `FOR UPDATE SKIP LOCKED` inside a transaction that stays open
/// until the broker confirmed them, so two relays never publish the same row at once;
/// a row younger than `grace` is left to its writer's own after-commit publish. The relay
/// also runs that after-commit publish: the batches of ``OutboxPublisher/publishSoon(_:)``.
public struct OutboxRelay: Service {
    let publisher: OutboxPublisher
    let interval: Duration
    let grace: Duration
    let batchSize: Int

    /// Creates a relay polling every `interval`.
    public init(publisher: OutboxPublisher, interval: Duration = .seconds(1), grace: Duration = .seconds(2), batchSize: Int = 200) {
        self.publisher = publisher
        self.interval = interval
        self.grace = grace
        self.batchSize = batchSize
    }

    public func run() async throws {
        let publisher = self.publisher
        await withDiscardingTaskGroup { group in
            // Events this process just committed, in batches, as they come.
            group.addTask { await publisher.publishCommittedBatches() }
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                do {
                    // Drain a backlog quickly, then poll.
                    while try await relayOnce() == batchSize {}
                    try await reportBacklog()
                } catch {
                    publisher.logger.warning("outbox relay pass failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
            // The batch publisher sends what is still in hand, then ends.
            publisher.committed.finish()
        }
    }

    /// `outbox_unpublished` and `outbox_oldest_unpublished_age_seconds`, after each pass.
    func reportBacklog() async throws {
        let row = try await publisher.pool.query(
            "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest FROM outbox WHERE published_at IS NULL")[0]
        Gauge(label: "outbox_unpublished").record(try row.decode(Int.self, "n"))
        Gauge(label: "outbox_oldest_unpublished_age_seconds").record(try row.decode(Double.self, "oldest"))
    }

    /// One pass: publishes up to `batchSize` stale rows; returns how many were confirmed.
    @discardableResult
    public func relayOnce() async throws -> Int {
        let graceMS = Int(grace.components.seconds * 1000 + grace.components.attoseconds / 1_000_000_000_000_000)
        return try await publisher.pool.withTransaction { db in
            let rows = try await db.query(
                """
                SELECT id, exchange, payload::text AS body FROM outbox
                WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1::float8 / 1000)
                ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
                """,
                [graceMS, batchSize])
            guard rows.count > 0 else { return 0 }
            var ids: [UUID] = []
            var messages: [AMQPOutgoingMessage] = []
            for row in rows {
                let body = Array(try row.decode(String.self, "body").utf8)
                let event = try EventEnvelope.decode(body)
                ids.append(try row.decode(UUID.self, "id"))
                messages.append(Outbox.message(for: event, body: body, exchange: try row.decode(String.self, "exchange")))
            }
            let confirmed = try await publisher.publishAndMark(ids: ids, messages: messages, on: db)
            if confirmed > 0 {
                publisher.logger.info("outbox relay published unpublished events", metadata: ["count": "\(confirmed)"])
            }
            return confirmed
        }
    }
}

/// Records processed messages per consumer so a redelivery is recognised.
public enum Inbox {
    /// Records `messageID` for `consumer`, handled by this process, in the transaction on
    /// `db`; false when it was already recorded (a duplicate: skip the effects, ack the message).
    public static func claim(consumer: String, messageID: UUID, on db: PostgresConnection) async throws -> Bool {
        try await db.query(
            "INSERT INTO inbox (consumer, message_id, handled_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [consumer, messageID, ProcessIdentity.current]).affectedRows == 1
    }
}
