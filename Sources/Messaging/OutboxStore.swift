import AMQP
import Domain
import Foundation
import Postgres
import Units

/// The `outbox` table: the only place with its SQL. Events are appended in the caller's
/// transaction; the relay and the operator's commands publish, mark, park and prune rows.
package enum OutboxStore {
    /// Appends `event` to the outbox in the transaction running on `db`, for `exchange` with
    /// the event's type as routing key.
    @discardableResult
    package static func append(_ event: EventEnvelope, exchange: String, on db: PostgresConnection) async throws -> OutboxEvent {
        try await append(event, to: .exchange(exchange), on: db)
    }

    /// Appends `event` to the outbox for `destination`: the events exchange (every role
    /// bound to its type receives it) or one role's work queue directly (a re-drive meant
    /// for that role alone).
    /// Returns the event with the bytes written, which the after-commit publish sends as they
    /// are (an event is encoded once). Inside a transaction the row goes out with the next
    /// statement or the `COMMIT` (``PostgresConnection/enqueue(_:_:)``): no round trip of its own.
    @discardableResult
    package static func append(_ event: EventEnvelope, to destination: Destination, on db: PostgresConnection) async throws -> OutboxEvent {
        let body = try event.encoded()
        try await db.enqueue(
            """
            INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, trace_parent, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            [
                event.id, event.type, destination.exchange, destination.routingKey(for: event), event.orderId,
                PostgresJSON(data: Data(body)), event.traceparent, event.occurredAt,
            ])
        return OutboxEvent(event: event, body: body)
    }

    /// Appends `events`, in order, to the outbox for `exchange` with one statement (a worker's
    /// batch writes all it emits at once). Returns each with the bytes written. The rows are
    /// dated when written, just before the batch commits, not when their handler ran: the
    /// relay's grace counts from `created_at`, and an early message of a long batch would
    /// otherwise look stale the moment it commits and be published twice.
    @discardableResult
    package static func append(_ events: [EventEnvelope], exchange: String, on db: PostgresConnection) async throws -> [OutboxEvent] {
        if events.count <= 1 {
            var appended: [OutboxEvent] = []
            for event in events { appended.append(try await append(event, exchange: exchange, on: db)) }
            return appended
        }
        let appended = try events.map { OutboxEvent(event: $0, body: try $0.encoded()) }
        try await db.enqueue(
            """
            INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, trace_parent, created_at)
            SELECT id, type, $3, type, order_id, payload::jsonb, trace_parent, clock_timestamp()
            FROM unnest($1::uuid[], $2::text[], $4::uuid[], $5::text[], $6::text[]) AS e(id, type, order_id, payload, trace_parent)
            """,
            [
                events.map(\.id), events.map(\.type), exchange, events.map(\.orderId),
                appended.map { String(decoding: $0.body, as: UTF8.self) }, events.map(\.traceparent),
            ])
        return appended
    }

    /// An event appended to the outbox, with the envelope's bytes as written.
    package struct OutboxEvent: Sendable {
        package let event: EventEnvelope
        package let body: [UInt8]
    }

    /// Where an outbox row is published.
    package enum Destination: Sendable, Hashable {
        /// A topic exchange, routed by the event's type.
        case exchange(String)
        /// One queue, through the default exchange.
        case queue(String)

        var exchange: String {
            switch self {
            case .exchange(let name): name
            case .queue: ""
            }
        }

        func routingKey(for event: EventEnvelope) -> String {
            switch self {
            case .exchange: event.type
            case .queue(let name): name
            }
        }
    }

    /// The AMQP message for an event: the envelope as the body, its id as `message_id`,
    /// its type as routing key (unless `routingKey` names a queue) and `type`, persistent
    /// and mandatory.
    package static func message(for event: EventEnvelope, body: [UInt8], exchange: String, routingKey: String? = nil) -> AMQPOutgoingMessage {
        var headers: AMQPTable = ["schema_version": .int(Int64(event.schemaVersion))]
        if let traceparent = event.traceparent { headers["traceparent"] = .string(traceparent) }
        if let orderId = event.orderId { headers["order_id"] = .string(orderId.uuidString.lowercased()) }
        return AMQPOutgoingMessage(
            exchange: exchange, routingKey: routingKey ?? event.type, body: body,
            properties: AMQPProperties(
                messageID: event.id.uuidString.lowercased(), contentType: "application/json", type: event.type,
                timestamp: event.occurredAt, headers: headers, persistent: true, appID: "emporium"),
            mandatory: true)
    }

    // MARK: The relay's and the operator's statements

    /// Marks confirmed rows published, except rows another transaction holds: a relay that
    /// claimed a row (``claimStale(olderThan:limit:on:)``) keeps it locked while it publishes
    /// its batch, which took over 2 s at saturation (measured in `make bench`). Waiting for
    /// it would time the mark out and drop every id in it, each then published a second time
    /// by the next relay pass. The relay that holds a row publishes and marks it itself, or
    /// rolls back and leaves it to the next pass; a relay's own claimed rows are not skipped.
    /// Each id is found through the primary key, whatever waits in the outbox (migration 0017).
    package static func markPublished(_ ids: [UUID], on db: PostgresConnection) async throws {
        try await db.query(
            """
            UPDATE outbox SET published_at = now(), attempts = attempts + 1
            WHERE id IN (SELECT id FROM outbox WHERE id = ANY($1) AND published_at IS NULL FOR UPDATE SKIP LOCKED)
            """, [ids])
    }

    /// Counts a refused publish of a row and keeps its reason; parks the row once it was
    /// refused `parkAfter` times. Returns whether it is parked now.
    static func noteRefused(_ id: UUID, reason: String, parkAfter: Int, on db: PostgresConnection) async throws -> Bool {
        try await db.query(
            """
            UPDATE outbox SET attempts = attempts + 1, last_error = $2,
              parked_at = CASE WHEN attempts + 1 >= $3 THEN now() END
            WHERE id = $1 AND published_at IS NULL RETURNING parked_at IS NOT NULL AS parked
            """, [id, reason, parkAfter]
        ).first?.decode(Bool.self, "parked") == true
    }

    /// Parks a row at once (it cannot be decoded).
    static func park(_ id: UUID, reason: String, on db: PostgresConnection) async throws {
        try await db.query("UPDATE outbox SET attempts = attempts + 1, last_error = $2, parked_at = now() WHERE id = $1", [id, reason])
    }

    /// A row the relay publishes.
    struct StaleRow: Sendable {
        let id: UUID
        let exchange: String
        let routingKey: String
        let body: [UInt8]
    }

    /// Unpublished, unparked rows older than `grace` (younger ones are left to their writer's
    /// own after-commit publish), oldest first, locked `FOR UPDATE SKIP LOCKED` until the
    /// caller's transaction ends, so two relays never publish the same row at once.
    static func claimStale(olderThan grace: Duration, limit: Int, on db: PostgresConnection) async throws -> [StaleRow] {
        try await db.query(
            """
            SELECT id, exchange, routing_key, payload::text AS body FROM outbox
            WHERE published_at IS NULL AND parked_at IS NULL AND created_at < now() - make_interval(secs => $1::float8 / 1000)
            ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
            """, [grace.wholeMilliseconds, limit]
        ).map {
            StaleRow(
                id: try $0.decode(UUID.self, "id"), exchange: try $0.decode(String.self, "exchange"),
                routingKey: try $0.decode(String.self, "routing_key"), body: Array(try $0.decode(String.self, "body").utf8))
        }
    }

    /// The relay's backlog.
    package struct Backlog: Sendable, Encodable {
        package let unpublished: Int
        package let parked: Int
        /// Age of the oldest unpublished, unparked row.
        package let oldestSeconds: Double?
    }

    /// Unpublished rows: waiting, and parked.
    package static func backlog(on pool: PostgresPool) async throws -> Backlog {
        try await pool.withConnection { try await backlog(on: $0) }
    }

    /// Unpublished rows: waiting, and parked. Each figure is read through the partial index
    /// whose predicate it names (waiting: `outbox_unpublished_idx`, parked:
    /// `outbox_parked_idx`), so it reads the rows it counts and not the table: no index
    /// serves `published_at IS NULL` alone (migration 0017), and the outbox keeps a week of
    /// published rows.
    package static func backlog(on db: PostgresConnection) async throws -> Backlog {
        let row = try await db.query(
            """
            SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL) AS n,
                   (SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NOT NULL) AS parked,
                   extract(epoch FROM now() - (SELECT min(created_at) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL))::float8 AS oldest
            """)[0]
        return Backlog(
            unpublished: try row.decode(Int.self, "n"), parked: try row.decode(Int.self, "parked"), oldestSeconds: try row.decode(Double?.self, "oldest"))
    }

    /// A parked row, for an operator.
    package struct ParkedRow: Sendable, Encodable {
        package let id: UUID
        package let eventType: String
        package let orderId: UUID?
        package let exchange: String
        package let routingKey: String
        package let attempts: Int
        package let lastError: String?
        package let createdAt: Date
        package let parkedAt: Date
    }

    /// The parked rows, oldest first, at most `limit`.
    package static func parked(limit: Int, on pool: PostgresPool) async throws -> [ParkedRow] {
        try await pool.query(
            """
            SELECT id, event_type, order_id, exchange, routing_key, attempts, last_error, created_at, parked_at
            FROM outbox WHERE published_at IS NULL AND parked_at IS NOT NULL ORDER BY parked_at, created_at LIMIT $1
            """, [limit]
        ).map {
            ParkedRow(
                id: try $0.decode(UUID.self, "id"), eventType: try $0.decode(String.self, "event_type"), orderId: try $0.decode(UUID?.self, "order_id"),
                exchange: try $0.decode(String.self, "exchange"), routingKey: try $0.decode(String.self, "routing_key"),
                attempts: try $0.decode(Int.self, "attempts"), lastError: try $0.decode(String?.self, "last_error"),
                createdAt: try $0.decode(Date.self, "created_at"), parkedAt: try $0.decode(Date.self, "parked_at"))
        }
    }

    /// Hands parked rows back to the relay with their attempts reset: the ones in `ids`, or
    /// every parked row when `ids` is nil. Returns how many.
    package static func unpark(_ ids: [UUID]?, on pool: PostgresPool) async throws -> Int {
        try await pool.query(
            """
            UPDATE outbox SET parked_at = NULL, attempts = 0
            WHERE published_at IS NULL AND parked_at IS NOT NULL AND ($1::uuid[] IS NULL OR id = ANY($1))
            """, [ids]
        ).affectedRows
    }

    /// Deletes, at most `batch`, published rows older than `age`. Unpublished and parked rows stay.
    package static func prune(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            """
            DELETE FROM outbox WHERE id IN (
              SELECT id FROM outbox WHERE created_at < now() - make_interval(secs => $1) AND published_at IS NOT NULL LIMIT $2)
            """, [age.secondsWithFraction, batch]
        ).affectedRows
    }

}
