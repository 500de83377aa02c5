import AMQP
import Foundation
import Units

/// Publishes many confirmed messages through one long-lived ``AMQPPublisher`` and reports
/// its resident memory as it goes: the check that a publisher which lives for months does
/// not grow (rabbitmq-c keeps every frame it decodes until its buffers are released).
package struct PublisherSoak: Sendable {
    /// One checkpoint.
    package struct Checkpoint: Sendable, Encodable {
        package let published: Int
        package let residentMiB: Double
        package let messagesPerSecond: Double
    }

    let amqp: AMQPConfiguration
    let messages: Int
    let batch: Int
    let every: Int
    let bodyBytes: Int

    /// A soak of `messages` messages of `bodyBytes` bytes, published `batch` at a time and
    /// reported every `every`.
    package init(amqp: AMQPConfiguration, messages: Int, batch: Int = 500, every: Int = 100_000, bodyBytes: Int = 512) {
        self.amqp = amqp
        self.messages = messages
        self.batch = batch
        self.every = every
        self.bodyBytes = bodyBytes
    }

    /// Runs the soak against a queue of its own (bounded, so the broker keeps only the newest
    /// thousand), deleted at the end; `report` receives each checkpoint as it is reached.
    package func run(_ report: (Checkpoint) -> Void) async throws -> [Checkpoint] {
        let queue = "emporium.soak.publisher-\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try await AMQPConnection.connect(configuration: amqp)
        try await admin.declareQueue(
            AMQPQueue(
                name: queue, durable: false, autoDelete: false,
                arguments: ["x-max-length": .int(1_000), "x-overflow": .string("drop-head")]))
        let publisher = AMQPPublisher(configuration: amqp)
        var checkpoints: [Checkpoint] = []
        do {
            let body = [UInt8](repeating: UInt8(ascii: "x"), count: bodyBytes)
            let started = ContinuousClock.now
            var published = 0
            checkpoints.append(Checkpoint(published: 0, residentMiB: Self.residentMiB(), messagesPerSecond: 0))
            report(checkpoints[0])
            while published < messages {
                let count = min(batch, messages - published)
                let outgoing = (0..<count).map { _ in
                    AMQPOutgoingMessage(
                        exchange: "", routingKey: queue, body: body,
                        properties: AMQPProperties(contentType: "application/octet-stream", persistent: true), mandatory: true)
                }
                let outcomes = try await publisher.publish(outgoing)
                guard outcomes.allSatisfy({ $0 == .confirmed }) else {
                    throw AMQPError(code: .nacked, message: "the broker did not confirm every soak message")
                }
                let before = published
                published += count
                if published / every > before / every || published == messages {
                    let elapsed = ContinuousClock.now - started
                    let seconds = elapsed.secondsWithFraction
                    let checkpoint = Checkpoint(
                        published: published, residentMiB: Self.residentMiB(), messagesPerSecond: Double(published) / max(seconds, 0.001))
                    checkpoints.append(checkpoint)
                    report(checkpoint)
                }
            }
        } catch {
            await publisher.close()
            try? await admin.deleteQueue(queue)
            await admin.close()
            throw error
        }
        await publisher.close()
        try? await admin.deleteQueue(queue)
        await admin.close()
        return checkpoints
    }

    /// This process's resident set size (`VmRSS`), in MiB; 0 where /proc is missing.
    package static func residentMiB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kB = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return 0 }
        return kB / 1024
    }
}
