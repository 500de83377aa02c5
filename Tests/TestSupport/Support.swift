import AMQP
import Foundation
import Logging
import Operations
import Postgres

/// Shared helpers for tests against the real PostgreSQL and RabbitMQ started by
/// `make services`. Each test works in its own database, queue names or virtual host, so
/// tests run in any order and in parallel.
public enum TestEnvironment {
    /// The repository root (for scripts and sql/).
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// `DATABASE_URL`, or the local default.
    public static func postgres() throws -> PostgresConfiguration {
        try PostgresConfiguration.fromEnvironment()
    }

    /// `AMQP_URL`, or the local default.
    public static func amqp() throws -> AMQPConfiguration {
        try AMQPConfiguration.fromEnvironment()
    }

    /// A name no other test uses: `prefix-<8 hex>`.
    public static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Runs `body` with a fresh, empty database, dropped afterwards.
    public static func withTemporaryDatabase<T>(
        _ body: (PostgresConfiguration) async throws -> T
    ) async throws -> T {
        let base = try postgres()
        let name = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let admin = try await PostgresConnection.connect(configuration: base)
        // Identifiers cannot be bound as parameters; `name` is generated here from hex only.
        try await admin.query("CREATE DATABASE \(name)")
        do {
            let value = try await body(base.with(database: name))
            try await admin.query("DROP DATABASE \(name) WITH (FORCE)")
            await admin.close()
            return value
        } catch {
            _ = try? await admin.query("DROP DATABASE \(name) WITH (FORCE)")
            await admin.close()
            throw error
        }
    }

    /// Runs `body` with a fresh database migrated to the project's schema (`sql/`).
    public static func withMigratedDatabase<T>(_ body: (PostgresConfiguration) async throws -> T) async throws -> T {
        try await withTemporaryDatabase { config in
            var quiet = Logger(label: "test.migrate")
            quiet.logLevel = .warning
            try await Migrator(directory: repositoryRoot.appendingPathComponent("sql"), logger: quiet).migrate(configuration: config)
            return try await body(config)
        }
    }

    /// Runs the local broker's `rabbitmqctl` with `arguments`; returns its output.
    @discardableResult
    public static func rabbitmqctl(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = repositoryRoot.appendingPathComponent("scripts/rabbitmqctl")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: output, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw TestFailure("rabbitmqctl \(arguments.joined(separator: " ")) failed: \(text)")
        }
        return text
    }

    /// Runs `body` in a fresh virtual host the configured user may use, deleted afterwards.
    public static func withTemporaryVirtualHost<T>(_ body: (AMQPConfiguration) async throws -> T) async throws -> T {
        let base = try amqp()
        let vhost = uniqueName("test")
        try rabbitmqctl(["-q", "add_vhost", vhost])
        try rabbitmqctl(["-q", "set_permissions", "-p", vhost, base.user, ".*", ".*", ".*"])
        defer { _ = try? rabbitmqctl(["-q", "delete_vhost", vhost]) }
        return try await body(base.with(virtualHost: vhost))
    }

    /// Polls `condition` until it holds or `timeout` passes; returns whether it held.
    public static func eventually(
        timeout: Duration = .seconds(20), _ condition: () async throws -> Bool
    ) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }
}

/// A failure in test setup, with a message.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
