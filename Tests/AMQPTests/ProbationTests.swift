import AMQP
import Foundation
import TestSupport
import Testing

/// A consumer that replaces one that died meets the messages it held one at a time, so a
/// message that crashed its consumer does not drag the others to the delivery limit.
@Suite("AMQP consumer probation after a restart", .timeLimit(.minutes(2)))
struct ProbationTests {
    /// The prefetch count RabbitMQ applies to the consumers of `queue` right now.
    private func prefetchCounts(_ queue: String) async throws -> [Int] {
        let output: String = try await TestEnvironment.rabbitmqctl(["-q", "list_consumers", "queue_name", "prefetch_count"])
        var counts: [Int] = []
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "\t").map(String.init)
            if fields.count == 2, fields[0] == queue, let count = Int(fields[1]) { counts.append(count) }
        }
        return counts
    }

    @Test("after a consumer dies, the messages it held come back one at a time (prefetch 1), before fresh ones; the first fresh one restores the prefetch")
    func redeliveriesOneAtATime() async throws {
        let filled = try await FilledQuorumQueue(prefix: "probation", messages: 12)
        defer { filled.delete() }
        let (config, queue) = (filled.config, filled.name)

        var options = AMQPConsumer.Options()
        options.prefetch = 4
        // The first consumer takes a few and dies holding them (no ack).
        let first = AMQPConsumer(configuration: config, queue: queue, options: options)
        var held: [String] = []
        for await delivery in first.deliveries {
            held.append(delivery.properties.messageID ?? "")
            if held.count == 3 { break }
        }
        await first.stop()

        let second = AMQPConsumer(configuration: config, queue: queue, options: options)
        var iterator = second.deliveries.makeAsyncIterator()
        var redelivered: [String] = []
        var fresh: AMQPDelivery?
        while fresh == nil, let delivery = await iterator.next() {
            if delivery.redelivered {
                // While it handles a returned message, the consumer holds nothing else. The
                // broker's list can still show the dead consumer for a moment after its channel
                // closed (seen under a loaded CI run), so wait for it to settle; the prefetch
                // itself cannot change before this message is acknowledged.
                var seen: [Int] = []
                let onlyOne = await TestEnvironment.eventually(timeout: .seconds(10)) {
                    seen = (try? await prefetchCounts(queue)) ?? []
                    return seen == [1]
                }
                #expect(onlyOne, "prefetch counts of \(queue)'s consumers: \(seen)")
                redelivered.append(delivery.properties.messageID ?? "")
                try await second.ack(delivery)
            } else {
                fresh = delivery
            }
        }
        // Every message the dead consumer held came back first, one at a time.
        #expect(Set(held).isSubset(of: Set(redelivered)), "held \(held), redelivered \(redelivered)")
        let freshID = try #require(fresh?.properties.messageID)
        #expect(!redelivered.contains(freshID))
        // Then the consumer takes the full prefetch again.
        #expect(await TestEnvironment.eventually(timeout: .seconds(10)) { (try? await prefetchCounts(queue)) == [4] })
        await second.stop()
    }
}
