import AMQP
import TestSupport
import Testing

/// A quorum queue of the test's own holding `count` confirmed messages, with message ids and
/// bodies "m0", "m1", …, and the connection that manages it.
struct FilledQuorumQueue {
    let config: AMQPConfiguration
    let admin: AMQPConnection
    let name: String

    init(prefix: String, messages count: Int) async throws {
        config = try TestEnvironment.amqp()
        admin = try await AMQPConnection.connect(configuration: config)
        name = TestEnvironment.uniqueName(prefix)
        try await admin.declareQueue(.quorum(name, deliveryLimit: 10))
        let publisher = AMQPPublisher(configuration: config)
        let messages = (0..<count).map {
            AMQPOutgoingMessage(exchange: "", routingKey: name, body: Array("m\($0)".utf8), properties: AMQPProperties(messageID: "m\($0)"))
        }
        let outcomes = try await publisher.publish(messages)
        await publisher.close()
        try #require(outcomes.allSatisfy { $0 == .confirmed }, "every message was confirmed")
    }

    /// Deletes the queue and closes the connection, in the background (for `defer`).
    func delete() {
        Task { [admin, name] in
            try? await admin.deleteQueue(name)
            await admin.close()
        }
    }
}
