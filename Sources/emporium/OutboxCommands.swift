import ArgumentParser
import Foundation
import Operations
import Postgres

/// `emporium outbox ...`: the outbox rows the relay parked.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Inspect and retry outbox rows the relay parked (the broker kept refusing them, or they could not be decoded).",
        subcommands: [Parked.self, Retry.self])

    /// `emporium outbox parked`.
    struct Parked: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List parked outbox rows, oldest first.")
        @Option(help: "At most this many rows (1-1000).") var limit = 100
        @Flag(help: "JSON output.") var json = false

        func validate() throws {
            guard (1...1_000).contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
        }

        func run() async throws {
            try await withPool { pool in
                let rows = try await ParkedOutbox(pool: pool).list(limit: limit)
                if json { return try printJSON(rows) }
                print("\(rows.count) parked outbox row(s)")
                for row in rows {
                    let target = row.exchange.isEmpty ? "queue \(row.routingKey)" : "\(row.exchange) (\(row.routingKey))"
                    print(
                        "\(row.id.uuidString.lowercased())  \(row.eventType)  order \(row.orderId.map { $0.uuidString.lowercased() } ?? "-")  to \(target)  attempts \(row.attempts)"
                    )
                    print("    \(row.lastError ?? "")")
                }
            }
        }
    }

    /// `emporium outbox retry`.
    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hand parked rows back to the relay, attempts reset (fix the cause first).")
        @Option(name: .customLong("id"), help: "A parked row's id (repeatable).") var ids: [String] = []
        @Flag(help: "Every parked row.") var all = false

        func validate() throws {
            guard all != !ids.isEmpty else { throw ValidationError("give --id (one or more) or --all") }
            guard ids.allSatisfy({ UUID(uuidString: $0) != nil }) else { throw ValidationError("--id must be a UUID") }
        }

        func run() async throws {
            try await withPool { pool in
                let count = try await ParkedOutbox(pool: pool).retry(ids: all ? nil : ids.compactMap(UUID.init(uuidString:)))
                print("outbox retry: \(count) row(s) handed back to the relay")
            }
        }
    }
}
