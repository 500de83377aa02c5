import AMQP
import Foundation
import Messaging
import TestSupport
import Testing

/// The saga reconciler's view of a work queue: how many messages wait ready, read on the real
/// broker, and nothing (not a hang) from a broker that cannot answer.
@Suite("Work queue backlog reads", .timeLimit(.minutes(2)))
struct WorkQueueBacklogTests {
    @Test("the ready depth of each queue is read; a queue that does not exist is left out, and the others still read")
    func readsReadyDepth() async throws {
        let config = try TestEnvironment.amqp()
        let admin = try await AMQPConnection.connect(configuration: config)
        let busy = TestEnvironment.uniqueName("backlog-busy"), empty = TestEnvironment.uniqueName("backlog-empty")
        let missing = TestEnvironment.uniqueName("backlog-missing")
        try await admin.declareQueue(AMQPQueue(name: busy))
        try await admin.declareQueue(AMQPQueue(name: empty))
        let publisher = AMQPPublisher(configuration: config)
        let outcomes = try await publisher.publish(
            (0..<3).map { AMQPOutgoingMessage(exchange: "", routingKey: busy, body: Array("m\($0)".utf8), properties: AMQPProperties(messageID: "m\($0)")) })
        #expect(outcomes.allSatisfy { $0 == .confirmed })

        let ready = await WorkQueueBacklog(amqp: config).ready(in: [busy, empty, missing])
        #expect(ready == [busy: 3, empty: 0])
        #expect(await WorkQueueBacklog(amqp: config).ready(in: []) == [:])

        await publisher.close()
        try? await admin.deleteQueue(busy)
        try? await admin.deleteQueue(empty)
        await admin.close()
    }

    @Test("a broker that accepts the connection but never answers yields no depths within the deadline, not a hang")
    func frozenBroker() async throws {
        // The kernel completes the TCP handshake; nothing ever speaks AMQP: a frozen broker host.
        let (fd, port) = try TestEnvironment.bindLoopback(listening: true)
        defer { close(fd) }
        var config = try TestEnvironment.amqp()
        config.host = "127.0.0.1"
        config.port = port
        let started = ContinuousClock.now
        let ready = await WorkQueueBacklog(amqp: config, deadline: .milliseconds(700)).ready(in: ["orders.stock"])
        #expect(ready.isEmpty)
        // Without the deadline this waits for the configured connect timeout or longer; the
        // bound leaves room for a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
