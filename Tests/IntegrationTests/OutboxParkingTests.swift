import AMQP
import Domain
import Foundation
import Logging
import Postgres
import TestSupport
import Testing

@testable import Messaging

/// The relay never stalls behind rows it cannot publish: they are parked, listed and
/// retried by an operator, while the rows behind them flow.
@Suite("Outbox relay and poison rows", .timeLimit(.minutes(2)))
struct OutboxParkingTests {
    @Test("an undecodable row and a row the broker keeps returning are parked; the rows behind them are published; emporium outbox lists and retries them")
    func poisonRowsAreParked() async throws {
        // No stack: its API's own relay would publish these rows before the test's relay does.
        try await TestEnvironment.withMigratedDatabase { database in
            let stack = try Bare(database: database)
            defer { Task { await stack.db.close() } }
            let admin = try await AMQPConnection.connect(configuration: stack.amqp)
            try await admin.declare(stack.names.topology(policy: Stack.Options().policy))
            let sink = TestEnvironment.uniqueName("relay-sink")
            try await admin.declareQueue(AMQPQueue(name: sink))
            defer {
                Task {
                    try? await admin.deleteQueue(sink)
                    await admin.close()
                }
            }

            // Oldest first: the relay meets the poison rows before the good one.
            let undecodable = UUID(), unroutable = UUID()
            try await stack.db.query(
                "INSERT INTO outbox (id, event_type, exchange, routing_key, payload, created_at) VALUES ($1, 'order.placed', '', $2, '{\"not\": \"an envelope\"}', now() - interval '1 minute')",
                [undecodable, sink])
            let event = try EventEnvelope(type: .orderPlaced, orderId: UUID(), payload: ["hello": "world"])
            try await stack.db.query(
                """
                INSERT INTO outbox (id, event_type, exchange, routing_key, payload, created_at, attempts)
                VALUES ($1, 'order.placed', '', 'no-such-queue-anywhere', $2, now() - interval '50 seconds', $3)
                """, [unroutable, PostgresJSON(data: Data(try event.encoded())), Messaging.OutboxRelay.parkAfterAttempts - 1])
            let good = try EventEnvelope(type: .orderPlaced, orderId: UUID(), payload: ["good": "row"])
            try await stack.db.query(
                "INSERT INTO outbox (id, event_type, exchange, routing_key, payload, created_at) VALUES ($1, 'order.placed', '', $2, $3, now() - interval '40 seconds')",
                [good.id, sink, PostgresJSON(data: Data(try good.encoded()))])

            var logger = Logger(label: "test.relay")
            logger.logLevel = .critical
            let publisher = AMQPPublisher(configuration: stack.amqp)
            let relay = OutboxRelay(publisher: OutboxPublisher(publisher: publisher, pool: stack.db, exchange: stack.names.eventsExchange, logger: logger))
            #expect(try await relay.relayOnce() == 3)
            // The good row was published and marked; the poison ones are parked with a reason.
            let delivered = try #require(try await admin.getAndAck(queue: sink))
            #expect(delivered.properties.messageID == good.id.uuidString.lowercased())
            #expect(try await stack.count("SELECT count(*) FROM outbox WHERE id = $1 AND published_at IS NOT NULL", [good.id]) == 1)
            #expect(try await stack.count("SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL AND published_at IS NULL") == 2)
            #expect(try await relay.relayOnce() == 0, "parked rows are not tried again")

            let cli = CLI(environment: stack.processEnvironment)
            let listed = try cli.run("outbox", "parked", "--json")
            #expect(listed.status == 0, "\(listed.stderr)")
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
            #expect(Set(rows.compactMap { $0["id"] as? String }) == [undecodable.uuidString, unroutable.uuidString])
            #expect(rows.contains { ($0["last_error"] as? String)?.contains("undecodable") == true })
            #expect(rows.contains { ($0["last_error"] as? String)?.contains("returned") == true })
            #expect(try cli.run("outbox", "retry").status == 64, "a retry needs --id or --all")
            let retried = try cli.run("outbox", "retry", "--id", unroutable.uuidString)
            #expect(retried.stdout.contains("1 row(s) handed back"))
            #expect(try await stack.count("SELECT count(*) FROM outbox WHERE id = $1 AND parked_at IS NULL AND attempts = 0", [unroutable]) == 1)
            let status = try cli.run("status")
            #expect(status.stdout.contains("1 parked"))
            await publisher.close()
            try? await admin.deleteExchange(stack.names.eventsExchange)
            try? await admin.deleteExchange(stack.names.deadLetterExchange)
            for role in WorkerRole.allCases {
                try? await admin.deleteQueue(stack.names.queue(role))
                try? await admin.deleteQueue(stack.names.deadLetterQueue(role))
                for delay in Stack.Options().policy.retryDelays { try? await admin.deleteQueue(stack.names.retryQueue(role, delay: delay)) }
            }
        }
    }

    @Test(
        "an event that waited past the cutoff to be published after commit is left to the relay, which publishes it once; a fresh one is published and marked at once"
    )
    func staleHandOversAreLeftToTheRelay() async throws {
        try await TestEnvironment.withMigratedDatabase { database in
            let stack = try Bare(database: database)
            defer { Task { await stack.db.close() } }
            let (admin, sink, publisher, outbox) = try await stack.publisherWithSink("handover-sink", logger: "test.handover")
            defer {
                Task {
                    try? await admin.deleteQueue(sink)
                    try? await admin.deleteExchange(stack.names.eventsExchange)
                    await admin.close()
                }
            }
            func commit(_ event: EventEnvelope) async throws {
                let appended = try await stack.db.withTransaction { try await OutboxStore.append([event], exchange: stack.names.eventsExchange, on: $0) }
                outbox.publishSoon(appended)
            }
            func published(_ id: UUID) async throws -> Bool {
                try await stack.count("SELECT count(*) FROM outbox WHERE id = $1 AND published_at IS NOT NULL", [id]) == 1
            }

            // Handed over and taken with a cutoff already past: not published, left unmarked.
            let late = try EventEnvelope(type: .orderPlaced, orderId: UUID(), payload: ["late": "yes"])
            try await commit(late)
            await outbox.publishHandedOver(leavingToTheRelayAfter: .zero)
            #expect(try await !published(late.id))
            #expect(try await admin.queueStatus(sink).messages == 0)

            // Taken within the cutoff: published and marked before the call returns.
            let fresh = try EventEnvelope(type: .orderPlaced, orderId: UUID(), payload: ["late": "no"])
            try await commit(fresh)
            await outbox.publishHandedOver(leavingToTheRelayAfter: .seconds(60))
            #expect(try await published(fresh.id))

            // The relay publishes the late one; nothing goes out twice.
            let relay = OutboxRelay(publisher: outbox, grace: .zero)
            #expect(try await relay.relayOnce() == 1)
            #expect(try await published(late.id))
            var delivered: [String] = []
            while let delivery = try await admin.getAndAck(queue: sink) { delivered.append(delivery.properties.messageID ?? "") }
            #expect(delivered.sorted() == [late.id, fresh.id].map { $0.uuidString.lowercased() }.sorted())
            await publisher.close()
        }
    }

    @Test("events published after commit one batch at a time are marked together, in one statement, by the mark loop; none is lost when it ends")
    func handedOverMarksShareAStatement() async throws {
        try await TestEnvironment.withMigratedDatabase { database in
            let stack = try Bare(database: database)
            defer { Task { await stack.db.close() } }
            let (admin, sink, publisher, outbox) = try await stack.publisherWithSink("marks-sink", logger: "test.marks")
            defer {
                Task {
                    try? await admin.deleteQueue(sink)
                    try? await admin.deleteExchange(stack.names.eventsExchange)
                    await admin.close()
                }
            }

            // Three events, each committed, handed over and published on its own, as below
            // saturation: each is confirmed by the broker, and none is marked yet.
            var ids: [UUID] = []
            for index in 0..<3 {
                let event = try EventEnvelope(type: .orderPlaced, orderId: UUID(), payload: ["index": "\(index)"])
                let appended = try await stack.db.withTransaction { try await OutboxStore.append([event], exchange: stack.names.eventsExchange, on: $0) }
                outbox.publishSoon(appended)
                await outbox.publishHandedOver(leavingToTheRelayAfter: .seconds(60), marksLater: true)
                ids.append(event.id)
            }
            #expect(try await TestEnvironment.eventually { try await admin.queueStatus(sink).messages == 3 })
            #expect(try await stack.count("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") == 0)

            // The mark loop's pass marks all three in one transaction (one now(), so one
            // timestamp), and it returns once its queue is finished, with nothing left over.
            outbox.confirmedUnmarked.finish()
            await outbox.markConfirmedBatches(every: .seconds(3_600))
            #expect(try await stack.count("SELECT count(*) FROM outbox WHERE id = ANY($1) AND published_at IS NOT NULL", [ids]) == 3)
            #expect(try await stack.count("SELECT count(DISTINCT published_at) FROM outbox WHERE id = ANY($1)", [ids]) == 1)
            #expect(outbox.confirmedUnmarked.take(max: 10).isEmpty)
            await publisher.close()
        }
    }

    @Test("a mark skips the rows a relay has claimed and marks the rest at once; the relay marks what it holds")
    func marksDoNotWaitForARelaysClaim() async throws {
        try await TestEnvironment.withMigratedDatabase { database in
            let stack = try Bare(database: database)
            defer { Task { await stack.db.close() } }
            let markPool = PostgresPool(configuration: database, maxConnections: 1)
            defer { Task { await markPool.close() } }
            // Two committed events, both old enough for the relay, the claimed one the older.
            var ids: [UUID] = []
            for age in [60, 30] {
                let event = try EventEnvelope(type: .orderPlaced, orderId: UUID(), payload: ["age": "\(age)"])
                try await stack.db.query(
                    "INSERT INTO outbox (id, event_type, exchange, routing_key, payload, created_at) VALUES ($1, 'order.placed', 'events', 'order.placed', $2, now() - make_interval(secs => $3))",
                    [event.id, PostgresJSON(data: Data(try event.encoded())), age])
                ids.append(event.id)
            }
            let (claimed, other) = (ids[0], ids[1])
            func published(_ id: UUID) async throws -> Bool {
                try await stack.count("SELECT count(*) FROM outbox WHERE id = $1 AND published_at IS NOT NULL", [id]) == 1
            }

            // A relay's transaction claims the older row and holds it, as while it publishes.
            // Meanwhile the after-commit mark of both rows returns without waiting for that
            // transaction (waiting would end in the mark pool's statement timeout: the
            // transaction below ends only after the mark): it marks the other row only.
            try await stack.db.withTransaction { relay in
                let rows = try await OutboxStore.claimStale(olderThan: .zero, limit: 1, on: relay)
                #expect(rows.map(\.id) == [claimed])
                try await markPool.withConnection { try await OutboxStore.markPublished([claimed, other], on: $0) }
                #expect(try await markPool.query("SELECT published_at IS NOT NULL AS marked FROM outbox WHERE id = $1", [other])[0].decode(Bool.self, "marked"))
                // The relay marks the row it holds.
                try await OutboxStore.markPublished([claimed], on: relay)
            }
            #expect(try await published(claimed))
            #expect(try await published(other))
            #expect(
                try await stack.count("SELECT count(*) FROM outbox WHERE id = ANY($1) AND attempts = 1", [ids]) == 2,
                "each row was marked once")
        }
    }

    /// A database, a namespace on the broker and nothing running.
    struct Bare {
        let database: PostgresConfiguration
        let amqp: AMQPConfiguration
        let names = MessagingNames(namespace: TestEnvironment.uniqueName("bare"))
        let db: PostgresPool

        init(database: PostgresConfiguration) throws {
            self.database = database
            self.amqp = try TestEnvironment.amqp()
            self.db = PostgresPool(configuration: database, maxConnections: 2)
        }

        /// An outbox publisher for the events exchange, and a queue of the test's own bound
        /// to everything published there (the caller deletes both and closes `admin`).
        func publisherWithSink(_ sinkPrefix: String, logger label: String) async throws
            -> (admin: AMQPConnection, sink: String, publisher: AMQPPublisher, outbox: OutboxPublisher)
        {
            let admin = try await AMQPConnection.connect(configuration: amqp)
            let sink = TestEnvironment.uniqueName(sinkPrefix)
            try await admin.declare(
                AMQPTopology(
                    exchanges: [AMQPExchange(name: names.eventsExchange, type: .topic)], queues: [AMQPQueue(name: sink)],
                    bindings: [AMQPBinding(queue: sink, exchange: names.eventsExchange, routingKey: "#")]))
            var logger = Logger(label: label)
            logger.logLevel = .critical
            let publisher = AMQPPublisher(configuration: amqp)
            return (admin, sink, publisher, OutboxPublisher(publisher: publisher, pool: db, exchange: names.eventsExchange, logger: logger))
        }

        func count(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws -> Int {
            try await db.query(sql, parameters)[0].decode(Int.self, at: 0)
        }

        var processEnvironment: [String: String] {
            var environment = ProcessInfo.processInfo.environment
            environment["DATABASE_URL"] = "postgres://\(database.user):\(database.password ?? "")@\(database.host):\(database.port)/\(database.database)"
            environment["AMQP_URL"] = "amqp://\(amqp.user):\(amqp.password)@\(amqp.host):\(amqp.port)/%2F"
            environment["EMPORIUM_NAMESPACE"] = names.namespace
            return environment
        }
    }
}
