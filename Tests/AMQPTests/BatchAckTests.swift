import Foundation
import TestSupport
import Testing

@testable import AMQP

/// A batch's acks go out as one `multiple` frame where that is safe, and never settle a
/// delivery that is still being handled.
@Suite("AMQP consumer: a batch acked in one frame", .timeLimit(.minutes(2)))
struct BatchAckTests {
    @Test("acks in any order, batched or not, settle exactly the deliveries named: one left unacked in the middle comes back, and only it")
    func batchedAcksSettleExactlyTheirDeliveries() async throws {
        let filled = try await FilledQuorumQueue(prefix: "batch-ack", messages: 8)
        defer { filled.delete() }
        let (config, admin, queue) = (filled.config, filled.admin, filled.name)

        var options = AMQPConsumer.Options()
        options.prefetch = 16
        let consumer = AMQPConsumer(configuration: config, queue: queue, options: options)
        var received: [AMQPDelivery] = []
        for await delivery in consumer.deliveries {
            received.append(delivery)
            if received.count == 8 { break }
        }
        #expect(received.map { $0.properties.messageID ?? "" } == (0..<8).map { "m\($0)" })
        let d = received
        // Not from the oldest unsettled (d0 is still being handled): one frame each.
        try await consumer.ack([d[1], d[3]])
        // From the oldest: d0..d2 in one frame (d1 was settled already).
        try await consumer.ack([d[2], d[0]])
        // d4 stays unacked; d5 and d7 come after it, d6 is given back for a retry.
        try await consumer.ack([d[5], d[7]])
        try await consumer.nack(d[6], requeue: true)
        var retried: AMQPDelivery?
        for await delivery in consumer.deliveries {
            retried = delivery
            break
        }
        #expect(retried?.properties.messageID == "m6" && retried?.redelivered == true)
        if let retried { try await consumer.ack([retried]) }
        // No ack named a tag twice or an unknown one (the broker would have closed the channel).
        #expect(consumer.reconnects == 0 && consumer.connection == 1)
        await consumer.stop()

        // Only the delivery no ack named is back in the queue.
        var left = -1
        let settled = await TestEnvironment.eventually(timeout: .seconds(10)) {
            left = (try? await admin.queueStatus(queue))?.messages ?? -1
            return left == 1
        }
        #expect(settled, "\(left) messages left in \(queue), not 1")
        let unacked = try await admin.getAndAck(queue: queue)
        #expect(unacked?.properties.messageID == "m4")
        #expect(try await admin.getAndAck(queue: queue) == nil)
    }

    @Test("the plan acks with multiple only a run that starts at the oldest unsettled tag")
    func planCoversOnlyARunFromTheOldest() {
        var tags = UnsettledTags()
        for tag in UInt64(1)...6 { tags.received(tag) }
        // 1 is unsettled: 2 and 4 go one frame each.
        #expect(tags.planAcks([2, 4]) == .init(multipleUpTo: nil, singly: [2, 4]))
        // 1 and 3 close the gap: one frame up to 3 (2 settled already); 4 is passed over too.
        #expect(tags.planAcks([3, 1]) == .init(multipleUpTo: 3, singly: []))
        // 5 was nacked on its own; 6 then starts the run.
        tags.settledSingly(5)
        #expect(tags.planAcks([6]) == .init(multipleUpTo: 6, singly: []))
        // A new channel forgets the old tags.
        tags.reset()
        for tag in UInt64(1)...3 { tags.received(tag) }
        #expect(tags.planAcks([1, 2, 3]) == .init(multipleUpTo: 3, singly: []))
    }
}
