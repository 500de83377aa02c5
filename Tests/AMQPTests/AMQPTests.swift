import AMQP
import Foundation
import TestSupport
import Testing

@Suite("AMQP against the real broker", .timeLimit(.minutes(10)))
struct AMQPTests {
    /// A durable queue with a unique name, deleted after `body`.
    private func withQueue<T>(
        _ config: AMQPConfiguration, _ queue: AMQPQueue? = nil, _ body: (AMQPConnection, String) async throws -> T
    ) async throws -> T {
        let admin = try await AMQPConnection.connect(configuration: config)
        let declared = queue ?? AMQPQueue(name: TestEnvironment.uniqueName("amqp-test"))
        try await admin.declareQueue(declared)
        do {
            let value = try await body(admin, declared.name)
            try? await admin.deleteQueue(declared.name)
            await admin.close()
            return value
        } catch {
            try? await admin.deleteQueue(declared.name)
            await admin.close()
            throw error
        }
    }

    private func message(_ queue: String, _ text: String, id: String? = nil) -> AMQPOutgoingMessage {
        AMQPOutgoingMessage(
            exchange: "", routingKey: queue, body: Array(text.utf8),
            properties: AMQPProperties(messageID: id, contentType: "text/plain"))
    }

    @Test("10,000 messages published with confirms are all consumed with manual ack, none lost or duplicated")
    func tenThousand() async throws {
        let config = try TestEnvironment.amqp()
        try await withQueue(config) { admin, queue in
            let publisher = AMQPPublisher(configuration: config)
            let ids = (0..<10_000).map { "m-\($0)" }
            var outcomes: [AMQPPublishOutcome] = []
            for chunk in stride(from: 0, to: ids.count, by: 2_000) {
                let batch = ids[chunk..<min(chunk + 2_000, ids.count)].map { message(queue, "body of \($0)", id: $0) }
                outcomes += try await publisher.publish(batch)
            }
            #expect(outcomes.count == 10_000)
            #expect(outcomes.allSatisfy { $0 == .confirmed })
            #expect(try await admin.queueStatus(queue).messages == 10_000)

            var options = AMQPConsumer.Options()
            options.prefetch = 200
            let consumer = AMQPConsumer(configuration: config, queue: queue, options: options)
            var seen: [String: Int] = [:]
            var count = 0
            for await delivery in consumer.deliveries {
                let id = try #require(delivery.properties.messageID)
                #expect(String(decoding: delivery.body, as: UTF8.self) == "body of \(id)")
                seen[id, default: 0] += 1
                try await consumer.ack(delivery)
                count += 1
                if count == 10_000 { break }
            }
            #expect(seen.count == 10_000)
            #expect(seen.values.allSatisfy { $0 == 1 })
            #expect(Set(seen.keys) == Set(ids))
            // Acked: nothing is left, not even unacknowledged.
            await consumer.stop()
            #expect(try await admin.queueStatus(queue).messages == 0)
            await publisher.close()
        }
    }

    @Test("nack with requeue redelivers with the redelivered flag")
    func nackRequeue() async throws {
        let config = try TestEnvironment.amqp()
        try await withQueue(config) { _, queue in
            let publisher = AMQPPublisher(configuration: config)
            try await publisher.publish(message(queue, "again", id: "again-1"))
            let consumer = AMQPConsumer(configuration: config, queue: queue)
            var iterator = consumer.deliveries.makeAsyncIterator()
            let first = try #require(await iterator.next())
            #expect(first.redelivered == false)
            try await consumer.nack(first, requeue: true)
            let second = try #require(await iterator.next())
            #expect(second.redelivered == true)
            #expect(second.properties.messageID == "again-1")
            try await consumer.ack(second)
            await consumer.stop()
            await publisher.close()
        }
    }

    @Test("an unroutable mandatory publish is reported")
    func unroutable() async throws {
        let config = try TestEnvironment.amqp()
        let publisher = AMQPPublisher(configuration: config)
        let nowhere = TestEnvironment.uniqueName("no-such-queue")
        let error = await #expect(throws: AMQPError.self) {
            try await publisher.publish(message(nowhere, "lost?"))
        }
        #expect(error?.code == .unroutable)
        #expect(error?.replyCode == 312)

        // In a batch, only the unroutable message is reported; the others are confirmed.
        try await withQueue(config) { _, queue in
            let outcomes = try await publisher.publish([message(queue, "a"), message(nowhere, "b"), message(queue, "c")])
            #expect(outcomes[0] == .confirmed)
            #expect(outcomes[1] == .returned(replyCode: 312, replyText: "NO_ROUTE"))
            #expect(outcomes[2] == .confirmed)
        }
        await publisher.close()
    }

    @Test("publishing to a missing exchange fails with the broker's reply, and the publisher recovers")
    func missingExchange() async throws {
        let config = try TestEnvironment.amqp()
        let publisher = AMQPPublisher(configuration: config)
        let error = await #expect(throws: AMQPError.self) {
            try await publisher.publish(AMQPOutgoingMessage(exchange: TestEnvironment.uniqueName("no-exchange"), routingKey: "x", body: [1]))
        }
        #expect(error?.code == .channelClosed)
        #expect(error?.replyCode == 404)
        try await withQueue(config) { admin, queue in
            try await publisher.publish(message(queue, "after the error"))
            #expect(try await admin.queueStatus(queue).messages == 1)
        }
        await publisher.close()
    }

    @Test("a quorum queue with a delivery limit dead-letters a message after the limit")
    func deliveryLimit() async throws {
        let config = try TestEnvironment.amqp()
        let admin = try await AMQPConnection.connect(configuration: config)
        let dlx = TestEnvironment.uniqueName("dlx")
        let dlq = TestEnvironment.uniqueName("dlq")
        let work = TestEnvironment.uniqueName("work")
        try await admin.declare(
            AMQPTopology(
                exchanges: [AMQPExchange(name: dlx, type: .fanout)],
                queues: [AMQPQueue(name: dlq), .quorum(work, deliveryLimit: 2, deadLetterExchange: dlx)],
                bindings: [AMQPBinding(queue: dlq, exchange: dlx, routingKey: "")]))
        defer {
            Task {
                try? await admin.deleteQueue(work)
                try? await admin.deleteQueue(dlq)
                try? await admin.deleteExchange(dlx)
                await admin.close()
            }
        }
        let publisher = AMQPPublisher(configuration: config)
        try await publisher.publish(message(work, "poison", id: "poison-1"))
        let consumer = AMQPConsumer(configuration: config, queue: work)
        // Keep failing it; the broker stops redelivering after the limit.
        let attempts = ReceivedIDs()
        let reader = Task {
            for await delivery in consumer.deliveries {
                await attempts.add(delivery.properties.messageID ?? "")
                try? await consumer.nack(delivery, requeue: true)
            }
        }
        #expect(await TestEnvironment.eventually { (try? await admin.queueStatus(dlq).messages) == 1 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(await attempts.count == 3)  // the first delivery and two redeliveries
        #expect(try await admin.queueStatus(work).messages == 0)
        reader.cancel()
        let dead = try #require(try await admin.getAndAck(queue: dlq))
        #expect(dead.properties.messageID == "poison-1")
        #expect(String(decoding: dead.body, as: UTF8.self) == "poison")
        #expect(dead.properties.headers["x-death"] != nil)
        await consumer.stop()
        await publisher.close()
    }

    @Test("after close_all_connections a publisher and a consumer reconnect and carry on")
    func reconnect() async throws {
        try await TestEnvironment.withTemporaryVirtualHost { config in
            let queue = "orders"
            var publisherOptions = AMQPPublisher.Options()
            publisherOptions.topology = AMQPTopology(queues: [AMQPQueue(name: queue)])
            let publisher = AMQPPublisher(configuration: config, options: publisherOptions)
            var consumerOptions = AMQPConsumer.Options()
            consumerOptions.topology = publisherOptions.topology
            try await publisher.connect()
            let consumer = AMQPConsumer(configuration: config, queue: queue, options: consumerOptions)
            #expect(await TestEnvironment.eventually { consumer.isConnected })

            let received = ReceivedIDs()
            let reader = Task {
                for await delivery in consumer.deliveries {
                    // An ack can fail when the connection dies under it; the broker redelivers.
                    if (try? await consumer.ack(delivery)) != nil {
                        await received.add(delivery.properties.messageID ?? "")
                    }
                }
            }
            _ = try await publisher.publish((0..<100).map { message(queue, "before", id: "before-\($0)") })
            #expect(await TestEnvironment.eventually { await received.count >= 100 })

            try await TestEnvironment.rabbitmqctl(["-q", "close_all_connections", "-p", config.virtualHost, "test: simulated outage"])

            _ = try await publisher.publish((0..<100).map { message(queue, "after", id: "after-\($0)") })
            if await !TestEnvironment.eventually(timeout: .seconds(20), { await received.count(prefix: "after-") >= 100 }) {
                // Where the missing ones are: still in the queue (the consumer stalled) or nowhere (lost).
                let queueState =
                    (try? await TestEnvironment.rabbitmqctl([
                        "-q", "list_queues", "-p", config.virtualHost, "name", "messages_ready", "messages_unacknowledged", "consumers",
                    ])) ?? "unavailable"
                Issue.record(
                    """
                    after the outage only \(await received.unique(prefix: "after-")) of 100 messages arrived within 20 s; \
                    consumer connected: \(consumer.isConnected), consumer reconnects: \(consumer.reconnects), \
                    publisher reconnects: \(publisher.reconnects); queue (name, ready, unacked, consumers): \(queueState)
                    """)
            }
            #expect(publisher.reconnects >= 1)
            #expect(consumer.reconnects >= 1)
            #expect(await received.unique(prefix: "before-") == 100)
            #expect(await received.unique(prefix: "after-") == 100)
            await consumer.stop()
            reader.cancel()
            await publisher.close()
        }
    }

    @Test("bad credentials or a closed port give a clear error")
    func connectFailures() async throws {
        var config = try TestEnvironment.amqp()
        config.password = "wrong-password"
        let refused = await #expect(throws: AMQPError.self) { _ = try await AMQPConnection.connect(configuration: config) }
        #expect(refused?.code == .accessRefused)
        #expect(refused?.message.contains(config.user) == true)
        #expect(refused?.message.contains("wrong-password") == false)

        var closed = try TestEnvironment.amqp()
        closed.port = 1
        let failed = await #expect(throws: AMQPError.self) { _ = try await AMQPConnection.connect(configuration: closed) }
        #expect(failed?.code == .connectionFailed)
        #expect(failed?.isTransient == true)

        let unknownVhost = try TestEnvironment.amqp().with(virtualHost: TestEnvironment.uniqueName("missing"))
        let vhost = await #expect(throws: AMQPError.self) { _ = try await AMQPConnection.connect(configuration: unknownVhost) }
        #expect(vhost?.code == .accessRefused)
    }

    @Test("AMQP_URL parsing")
    func urlParsing() throws {
        let config = try AMQPConfiguration(url: "amqp://app:s%40cret@mq.local:5673/shop%2Fprod")
        #expect(config.host == "mq.local")
        #expect(config.port == 5673)
        #expect(config.password == "s@cret")
        #expect(config.virtualHost == "shop/prod")
        #expect(try AMQPConfiguration(url: "amqp://a:b@h/%2F").virtualHost == "/")
        #expect(try AMQPConfiguration(url: "amqp://a:b@h").virtualHost == "/")
        #expect(throws: AMQPError.self) { try AMQPConfiguration(url: "http://h") }
    }
}

/// Message ids received by a background reader.
actor ReceivedIDs {
    private var ids: [String] = []
    func add(_ id: String) { ids.append(id) }
    var count: Int { ids.count }
    func count(prefix: String) -> Int { ids.filter { $0.hasPrefix(prefix) }.count }
    func unique(prefix: String) -> Int { Set(ids.filter { $0.hasPrefix(prefix) }).count }
}
