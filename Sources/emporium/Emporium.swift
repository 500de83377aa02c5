import ArgumentParser
import Domain
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
        subcommands: [
            Migrate.self, Seed.self, User.self, DLQ.self, OutboxCommand.self, PaymentsCommand.self, WebhooksCommand.self, Status.self, BenchCommand.self,
            SoakCommand.self,
        ])
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

/// `emporium seed`: the demo catalog and an admin from `SEED_ADMIN_EMAIL` / `SEED_ADMIN_PASSWORD`.
struct Seed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Insert the demo catalog and an admin account (from SEED_ADMIN_EMAIL and SEED_ADMIN_PASSWORD); existing rows are kept.")

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        try await withPool { pool in
            let result = try await Accounts(pool: pool).seed(adminEmail: environment["SEED_ADMIN_EMAIL"], adminPassword: environment["SEED_ADMIN_PASSWORD"])
            print("seed: \(result.products) product(s) added")
            if environment["SEED_ADMIN_EMAIL"] == nil || environment["SEED_ADMIN_PASSWORD"] == nil {
                print("seed: no admin created (set SEED_ADMIN_EMAIL and SEED_ADMIN_PASSWORD)")
            } else {
                print(result.admin ? "seed: admin \(environment["SEED_ADMIN_EMAIL"]!) created" : "seed: admin already exists")
            }
        }
    }
}

/// `emporium user ...`.
struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage user accounts.", subcommands: [Create.self])

    /// `emporium user create --email E --password P --role R`.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user with a role.")
        @Option(help: "Email address (the login).") var email: String
        @Option(help: "Password, 8 to 128 characters. Prefer --password-env to keep it out of shell history.") var password: String?
        @Option(help: "Name of an environment variable holding the password.") var passwordEnv: String?
        @Option(help: "CUSTOMER, SELLER, ADMIN or SUPERADMIN.") var role: String = "CUSTOMER"
        @Option(help: "First name.") var firstName: String = "Emporium"
        @Option(help: "Last name.") var lastName: String = "User"

        func validate() throws {
            guard Role(rawValue: role.uppercased()) != nil else { throw ValidationError("--role must be CUSTOMER, SELLER, ADMIN or SUPERADMIN") }
            guard (password == nil) != (passwordEnv == nil) else { throw ValidationError("give exactly one of --password and --password-env") }
        }

        func run() async throws {
            guard let secret = password ?? passwordEnv.flatMap({ ProcessInfo.processInfo.environment[$0] }) else {
                throw CLIError("user create: environment variable \(passwordEnv ?? "") is not set")
            }
            try await withPool { pool in
                do {
                    let id = try await Accounts(pool: pool).createUser(
                        email: email, password: secret, role: Role(rawValue: role.uppercased())!, firstName: firstName, lastName: lastName)
                    print("user create: \(email) (\(role.uppercased())) created with id \(id.uuidString.lowercased())")
                } catch let error as Accounts.Failure {
                    throw CLIError("user create: \(error)")
                }
            }
        }
    }
}

/// Runs `body` with a small pool on `DATABASE_URL`; connection errors become one-line messages.
func withPool(_ body: (PostgresPool) async throws -> Void) async throws {
    let pool = PostgresPool(configuration: try PostgresConfiguration.fromEnvironment(), maxConnections: 2)
    do {
        try await body(pool)
        await pool.close()
    } catch let error as PostgresError {
        await pool.close()
        throw CLIError("emporium: \(error.message)")
    } catch {
        await pool.close()
        throw error
    }
}

/// A failure reported as one line on standard error with exit code 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
