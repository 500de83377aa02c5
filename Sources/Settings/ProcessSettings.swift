import AMQP
import Foundation
import Logging
import Messaging
import Postgres

/// The settings every Emporium process shares, read one way: log level, PostgreSQL and its
/// pool, RabbitMQ, the namespace and the retry policy. Each process says only where its
/// defaults differ (``Defaults``): the API waits briefly for a database (a client is
/// waiting), a worker longer.
package struct ProcessSettings: Sendable {
    /// `LOG_LEVEL` (default info).
    package var logLevel: Logger.Level = .info
    /// `DATABASE_URL`, `DB_CONNECT_TIMEOUT_MS`, `DB_STATEMENT_TIMEOUT_MS`, `DB_QUERY_TIMEOUT_MS`.
    package var postgres: PostgresConfiguration
    /// `DB_POOL_SIZE`.
    package var poolSize: Int
    /// `DB_ACQUIRE_TIMEOUT_MS`: longest wait for a pooled connection.
    package var acquireTimeout: Duration
    /// `AMQP_URL`, `AMQP_HEARTBEAT_SECONDS`.
    package var amqp: AMQPConfiguration
    /// `EMPORIUM_NAMESPACE` (default `emporium`).
    package var names = MessagingNames()
    /// `RETRY_DELAYS_MS`, `RETRY_MAX_ATTEMPTS`, `WORKER_DELIVERY_LIMIT`.
    package var policy = QueuePolicy()
    /// `OUTBOX_RELAY_GRACE_MS` (default 2000): the relay leaves outbox rows younger than this
    /// to their writer's after-commit publish. Shorter republishes more events a second time
    /// (consumers skip them); longer delays recovery after a process died between commit and
    /// publish.
    package var relayGrace: Duration = .seconds(2)

    /// Where a process's defaults differ.
    package struct Defaults: Sendable {
        package var poolSize: Int
        package var acquireTimeout: Duration
        /// `DB_QUERY_TIMEOUT_MS` unset.
        package var queryTimeout: Duration
        /// `DB_CONNECT_TIMEOUT_MS` unset; nil keeps the client's default (5 s).
        package var connectTimeout: Duration?

        package init(poolSize: Int, acquireTimeout: Duration, queryTimeout: Duration, connectTimeout: Duration? = nil) {
            self.poolSize = poolSize
            self.acquireTimeout = acquireTimeout
            self.queryTimeout = queryTimeout
            self.connectTimeout = connectTimeout
        }
    }

    /// Settings with the given servers and `defaults` elsewhere.
    package init(postgres: PostgresConfiguration, amqp: AMQPConfiguration, defaults: Defaults) {
        self.postgres = postgres
        self.amqp = amqp
        self.poolSize = defaults.poolSize
        self.acquireTimeout = defaults.acquireTimeout
    }

    /// Reads the variables above.
    package static func read(_ environment: EnvironmentReader, defaults: Defaults) throws -> ProcessSettings {
        let postgres: PostgresConfiguration
        let amqp: AMQPConfiguration
        do {
            var config = try PostgresConfiguration.fromEnvironment(environment.values, defaultQueryTimeout: defaults.queryTimeout)
            if let connect = defaults.connectTimeout, environment.string("DB_CONNECT_TIMEOUT_MS") == nil { config.connectTimeout = connect }
            postgres = config
            amqp = try AMQPConfiguration.fromEnvironment(environment.values)
        } catch {
            throw ConfigurationError("\(error)")
        }
        var settings = ProcessSettings(postgres: postgres, amqp: amqp, defaults: defaults)
        if let level = try environment.logLevel() { settings.logLevel = level }
        if let size = try environment.positive("DB_POOL_SIZE") { settings.poolSize = size }
        if let timeout = try environment.milliseconds("DB_ACQUIRE_TIMEOUT_MS") { settings.acquireTimeout = timeout }
        settings.names = MessagingNames(namespace: environment.string("EMPORIUM_NAMESPACE") ?? "emporium")
        settings.policy = try QueuePolicy.read(environment)
        if let grace = try environment.milliseconds("OUTBOX_RELAY_GRACE_MS") { settings.relayGrace = grace }
        return settings
    }
}

extension QueuePolicy {
    /// Reads `RETRY_DELAYS_MS`, `RETRY_MAX_ATTEMPTS` and `WORKER_DELIVERY_LIMIT`.
    package static func read(_ environment: EnvironmentReader) throws -> QueuePolicy {
        var policy = QueuePolicy()
        if let delays = environment.list("RETRY_DELAYS_MS") {
            let values = delays.map { Int($0) }
            guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw ConfigurationError("RETRY_DELAYS_MS must be a comma-separated list of positive milliseconds")
            }
            policy.retryDelays = values.map { .milliseconds($0!) }
        }
        if let attempts = try environment.positive("RETRY_MAX_ATTEMPTS") { policy.maxAttempts = attempts }
        if let limit = try environment.positive("WORKER_DELIVERY_LIMIT") { policy.deliveryLimit = limit }
        return policy
    }
}
