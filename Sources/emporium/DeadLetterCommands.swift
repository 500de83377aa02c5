import AMQP
import ArgumentParser
import Domain
import Foundation
import Messaging
import OperatorTools

/// `emporium dlq`: inspect, replay and purge dead letters.
struct DLQ: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect, replay and purge dead-lettered messages (AMQP_URL, EMPORIUM_NAMESPACE).",
        subcommands: [List.self, Show.self, Replay.self, Purge.self, Stats.self])

    /// The filters shared by list, replay and purge.
    struct Filters: ParsableArguments {
        @Option(name: .customLong("queue"), help: "A role (stock, payment, order, notification) or queue name; repeatable.")
        var queues: [String] = []
        @Option(help: "Only this event type, e.g. payment.requested.") var type: String?
        @Option(help: "Only this order id.") var order: String?
        @Option(help: "Only errors matching this regular expression (case-insensitive).") var error: String?
        @Option(help: "Only messages that failed longer ago than this (90, 30s, 5m, 2h, 1d).") var olderThan: String?
        @Option(help: "Only messages that failed more recently than this.") var newerThan: String?

        func validate() throws {
            for (name, value) in [("--older-than", olderThan), ("--newer-than", newerThan)] {
                if let value, parseDuration(value) == nil { throw ValidationError("\(name) takes a duration such as 90, 30s, 5m, 2h or 1d") }
            }
            if let order, UUID(uuidString: order) == nil { throw ValidationError("--order takes an order id (a UUID)") }
        }

        var filter: DeadLetterFilter {
            var filter = DeadLetterFilter()
            filter.queues = queues
            filter.type = type
            filter.orderId = order
            filter.errorPattern = error
            filter.olderThan = olderThan.flatMap(parseDuration)
            filter.newerThan = newerThan.flatMap(parseDuration)
            return filter
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters without consuming them (depth and order unchanged).")
        @OptionGroup var filters: Filters
        @Option(help: "At most this many rows.") var limit: Int = 100
        @Flag(help: "JSON instead of a table.") var json = false

        func validate() throws { if limit < 1 { throw ValidationError("--limit must be at least 1") } }

        func run() async throws {
            let letters = try await tool { try await $0.list(filters.filter, limit: limit) }
            if json { return try printJSON(letters) }
            printTable(letters)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one dead letter in full: headers and body.")
        @Argument(help: "The message id.") var messageId: String
        @Flag(help: "JSON output.") var json = false

        func run() async throws {
            guard let letter = try await tool({ try await $0.show(messageId) }) else {
                throw CLIError("dlq show: no dead letter with message id \(messageId)")
            }
            if json { return try printJSON(letter) }
            print("queue:        \(letter.queue)")
            print("message id:   \(letter.messageId)")
            print("type:         \(letter.type ?? "-")")
            print("order id:     \(letter.orderId ?? "-")")
            print("error:        \(letter.error)")
            print("error class:  \(letter.errorClass ?? "-")")
            print("attempts:     \(letter.attempts)")
            print("replays:      \(letter.replayCount)")
            print("original:     \(letter.originalExchange ?? "-") / \(letter.originalRoutingKey ?? "-")")
            print("age:          \(formatAge(letter.ageSeconds))")
            print("headers:")
            for (key, value) in letter.headers.sorted(by: { $0.key < $1.key }) { print("  \(key): \(value)") }
            print("body:")
            print(letter.body)
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Republish dead letters to their original queue (confirmed before the dead copy is removed).")
        @Option(name: .customLong("id"), help: "A message id to replay; repeatable.") var ids: [String] = []
        @OptionGroup var filters: Filters
        @Flag(help: "Replay every dead letter (of the selected queues).") var all = false
        @Flag(help: "Show what would be replayed; change nothing.") var dryRun = false
        @Option(help: "At most this many per second, e.g. 5 or 5/s.") var rate: String?
        @Option(help: "At most this many messages.") var max: Int?
        @Flag(help: "Replay even messages replayed \(DeadLetters.guardLimit) or more times already.") var force = false
        @Flag(help: "JSON summary.") var json = false

        func validate() throws {
            guard !ids.isEmpty || !filters.filter.isEmpty || all else {
                throw ValidationError("choose what to replay: --id, a filter (--queue, --type, --order, --error, --older-than, --newer-than) or --all")
            }
            if let rate, parsedRate(rate) == nil { throw ValidationError("--rate takes a positive number per second, e.g. 5 or 5/s") }
            if let max, max < 1 { throw ValidationError("--max must be at least 1") }
        }

        private func parsedRate(_ text: String) -> Double? {
            let number = text.hasSuffix("/s") ? String(text.dropLast(2)) : text
            guard let value = Double(number), value > 0 else { return nil }
            return value
        }

        func run() async throws {
            var filter = filters.filter
            filter.messageIds = Set(ids)
            let json = self.json
            let dryRun = self.dryRun
            let report = try await tool {
                try await $0.replay(filter, dryRun: dryRun, rate: rate.flatMap(parsedRate), max: max, force: force) { letter in
                    if !json { print("\(dryRun ? "would replay" : "replayed") \(letter.messageId) \(letter.type ?? "-") -> \(letter.queue.dropLast(4))") }
                }
            }
            if json {
                try printJSON(report)
            } else {
                for letter in report.refused {
                    print("refused \(letter.messageId): replayed \(letter.replayCount) times already (use --force)")
                }
                let verb = dryRun ? "would replay" : "replayed"
                print(
                    String(
                        format: "dlq replay: %@ %d message(s) in %.1f s (%.1f/s)%@", verb, report.replayed.count, report.elapsedSeconds, report.ratePerSecond,
                        report.refused.isEmpty ? "" : ", refused \(report.refused.count)"))
            }
            if !ids.isEmpty, report.replayed.isEmpty, report.refused.isEmpty {
                throw CLIError("dlq replay: no dead letter with message id \(ids.joined(separator: ", "))")
            }
            if !report.refused.isEmpty { throw ExitCode(3) }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete dead letters for good; needs a filter or --all, and --yes.")
        @OptionGroup var filters: Filters
        @Flag(help: "Every dead letter (of the selected queues).") var all = false
        @Flag(help: "Confirm the deletion.") var yes = false

        func validate() throws {
            guard all || !filters.filter.isEmpty else {
                throw ValidationError("purge needs a filter (--queue, --type, --order, --error, --older-than, --newer-than) or --all")
            }
            guard yes else { throw ValidationError("purge deletes messages for good: add --yes to confirm") }
        }

        func run() async throws {
            let removed = try await tool { try await $0.purge(filters.filter) }
            for letter in removed { print("removed \(letter.messageId) \(letter.type ?? "-") from \(letter.queue)") }
            print("dlq purge: removed \(removed.count) message(s)")
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Depth and oldest age of every dead-letter queue.")
        @Flag(help: "JSON output.") var json = false

        func run() async throws {
            let stats = try await tool { try await $0.stats() }
            if json { return try printJSON(stats) }
            print(pad("QUEUE", 32) + pad("DEPTH", 8) + "OLDEST")
            for row in stats { print(pad(row.queue, 32) + pad(String(row.depth), 8) + (row.oldestAgeSeconds.map(formatAge) ?? "-")) }
        }
    }
}

/// Runs `body` with the tool configured from the environment; turns its errors into
/// one-line messages.
private func tool<T>(_ body: (DeadLetters) async throws -> T) async throws -> T {
    do {
        let environment = ProcessInfo.processInfo.environment
        return try await body(DeadLetters(amqp: try AMQPConfiguration.fromEnvironment(environment), names: .fromEnvironment(environment)))
    } catch let error as DeadLetterError {
        throw CLIError("dlq: \(error)")
    } catch let error as AMQPError {
        throw CLIError("dlq: RabbitMQ: \(error.message)")
    }
}

/// Prints `value` as pretty, key-sorted, snake_case JSON (every command's `--json`).
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = EmporiumJSON.encoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

private func printTable(_ letters: [DeadLetter]) {
    print(pad("QUEUE", 28) + pad("MESSAGE ID", 38) + pad("TYPE", 20) + pad("ORDER ID", 38) + pad("ATTEMPTS", 9) + pad("AGE", 8) + "ERROR")
    for letter in letters {
        print(
            pad(letter.queue, 28) + pad(letter.messageId, 38) + pad(letter.type ?? "-", 20) + pad(letter.orderId ?? "-", 38)
                + pad(String(letter.attempts), 9) + pad(formatAge(letter.ageSeconds), 8) + String(letter.error.prefix(80)))
    }
    print("\(letters.count) dead letter(s)")
}

private func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? String(text.prefix(width - 1)) + " " : text + String(repeating: " ", count: width - text.count)
}

private func formatAge(_ seconds: Int) -> String {
    switch seconds {
    case ..<120: "\(seconds)s"
    case ..<7_200: "\(seconds / 60)m"
    case ..<172_800: "\(seconds / 3_600)h"
    default: "\(seconds / 86_400)d"
    }
}
