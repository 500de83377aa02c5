import ArgumentParser
import Foundation
import Logging
import Operations
import Postgres

/// The operator CLI. Later issues add `seed`, `user`, `dlq` and `bench`.
@main
struct Emporium: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emporium",
        abstract: "Operate an Emporium installation.",
        subcommands: [Migrate.self])
}

/// `emporium migrate`: applies pending `sql/NNNN_*.sql` files to `DATABASE_URL`.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending schema migrations (each once, in order, in a transaction).")

    @Option(name: .long, help: "Directory holding NNNN_description.sql files (env MIGRATIONS_DIR).")
    var dir: String = ProcessInfo.processInfo.environment["MIGRATIONS_DIR"] ?? "sql"

    func run() async throws {
        var logger = Logger(label: "emporium.migrate")
        logger.logLevel = .warning
        do {
            let config = try PostgresConfiguration.fromEnvironment()
            let applied = try await Migrator(directory: URL(fileURLWithPath: dir), logger: logger).migrate(configuration: config)
            if applied.isEmpty {
                print("migrate: schema is up to date")
            } else {
                for migration in applied { print("migrate: applied \(migration.fileName)") }
            }
        } catch let error as MigrationError {
            throw CLIError("migrate: \(error.message)")
        } catch let error as PostgresError {
            throw CLIError("migrate: \(error.message)")
        }
    }
}

/// A failure reported as one line on standard error with exit code 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
