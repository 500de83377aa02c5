import AMQP
import ArgumentParser
import Foundation
import Operations

/// `emporium soak ...`: long runs that show what a benchmark of seconds cannot.
struct SoakCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak", abstract: "Long-running checks of resource use over time.", subcommands: [Publisher.self])

    /// `emporium soak publisher`: resident memory of a long-lived confirmed publisher.
    struct Publisher: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Publish many confirmed messages through one publisher (to a bounded queue of its own, AMQP_URL) and print the resident memory as it goes.")
        @Option(help: "Messages to publish in all.") var messages = 1_000_000
        @Option(help: "Messages per confirmed batch.") var batch = 500
        @Option(help: "Print a line every this many messages.") var every = 100_000
        @Flag(help: "JSON output (the checkpoints at the end).") var json = false

        func validate() throws {
            guard (1...100_000_000).contains(messages) else { throw ValidationError("--messages must be from 1 to 100000000") }
            guard (1...10_000).contains(batch) else { throw ValidationError("--batch must be from 1 to 10000") }
            guard every >= 1 else { throw ValidationError("--every must be at least 1") }
        }

        func run() async throws {
            let amqp = try AMQPConfiguration.fromEnvironment()
            let soak = PublisherSoak(amqp: amqp, messages: messages, batch: batch, every: every)
            let checkpoints: [PublisherSoak.Checkpoint]
            do {
                checkpoints = try await soak.run { checkpoint in
                    guard !json else { return }
                    print(
                        String(
                            format: "published %9d  resident %7.1f MiB  %8.0f msg/s", checkpoint.published, checkpoint.residentMiB, checkpoint.messagesPerSecond
                        ))
                }
            } catch let error as AMQPError {
                throw CLIError("soak publisher: \(error.message)")
            }
            if json { try printJSON(checkpoints) }
        }
    }
}
