import AMQP
import Foundation
import Logging
import Messaging
import Postgres
import ServiceLifecycle

/// What a worker process reads from its environment.
public struct WorkerConfiguration: Sendable {
    /// `DATABASE_URL` and friends.
    public var postgres: PostgresConfiguration
    /// `AMQP_URL`.
    public var amqp: AMQPConfiguration
    /// `EMPORIUM_NAMESPACE`.
    public var names: MessagingNames
    /// `WORKER_PREFETCH` (default 16): most messages in flight per worker process.
    public var prefetch: UInt16 = 16
    /// `DB_POOL_SIZE` (default 8).
    public var poolSize = 8
    /// `PAYMENT_PROVIDER_LATENCY_MS` (default 0): the fake provider's delay per call.
    public var providerLatency: Duration = .zero
    /// `LOG_LEVEL` (default info).
    public var logLevel: Logger.Level = .info
    /// Retry delays, attempt limit, delivery limit (`RETRY_DELAYS_MS`, `RETRY_MAX_ATTEMPTS`,
    /// `WORKER_DELIVERY_LIMIT`).
    public var policy = QueuePolicy()
    /// `WORKER_DRAIN_TIMEOUT_MS` (default 10000): how long SIGTERM waits for in-flight messages.
    public var drainTimeout: Duration = .seconds(10)
    /// `PAYMENT_TIMEOUT_SECONDS` (default 900): card orders awaiting payment longer are cancelled.
    public var paymentTimeout: Duration = .seconds(900)
    /// `MANUAL_PAYMENT_TIMEOUT_SECONDS` (default 900): orders placed with `manual` payment (the
    /// customer confirms the payment later) hold their stock at most this long unpaid.
    public var manualPaymentTimeout: Duration = .seconds(900)
    /// `SWEEPER_INTERVAL_MS` (default 10000): how often the order worker looks for them.
    public var sweeperInterval: Duration = .seconds(10)
    /// `FAKE_PROVIDER_FAULTS` (default false): enables the fake provider's crash token.
    public var providerFaults = false
    /// `SMTP_HOST`, `SMTP_PORT` (default 25): the notification worker sends email through
    /// this relay; unset, it only records messages in the `notifications` table.
    public var smtp: (host: String, port: Int)?
    /// `MAIL_FROM` (default orders@emporium.local): the sender of notification emails.
    public var mailFrom = "orders@emporium.local"
    /// `HEALTH_PORT`: serve `GET /health` and `GET /ready` on this port (unset: no server).
    public var healthPort: Int?
    /// `HEALTH_HOST` (default 127.0.0.1; 0.0.0.0 in containers).
    public var healthHost = "127.0.0.1"
    /// The saga reconciler's settings (`SAGA_STALL_SECONDS`, `SAGA_SWEEP_INTERVAL_MS`,
    /// `SAGA_MAX_REDRIVES`, `SAGA_LOOKBACK_SECONDS`); it runs in the order worker.
    public var saga = SagaReconciler.Settings()
    /// Retention of bookkeeping rows (`OUTBOX_RETENTION_SECONDS` and friends, see
    /// ``Retention``); it runs in the order worker.
    public var retention = Retention.Settings()

    /// Creates a configuration from its parts.
    public init(postgres: PostgresConfiguration, amqp: AMQPConfiguration, names: MessagingNames) {
        self.postgres = postgres
        self.amqp = amqp
        self.names = names
    }

    /// Reads the variables above.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> WorkerConfiguration {
        // Workers wait longer for a statement than the API (15 s, `DB_QUERY_TIMEOUT_MS`): no
        // client is waiting, and a frozen database pauses the worker either way.
        var config = WorkerConfiguration(postgres: try .fromEnvironment(environment, defaultQueryTimeout: .seconds(15)),
                                         amqp: try .fromEnvironment(environment), names: .fromEnvironment(environment))
        if let value = environment["WORKER_PREFETCH"] { config.prefetch = try positive(UInt16(value), "WORKER_PREFETCH") }
        if let value = environment["DB_POOL_SIZE"] { config.poolSize = try positive(Int(value), "DB_POOL_SIZE") }
        if let value = environment["PAYMENT_PROVIDER_LATENCY_MS"] {
            guard let ms = Int(value), ms >= 0 else { throw WorkerConfigurationError("PAYMENT_PROVIDER_LATENCY_MS must be a number of milliseconds") }
            config.providerLatency = .milliseconds(ms)
        }
        config.policy = try QueuePolicy.fromEnvironment(environment)
        if let value = environment["WORKER_DRAIN_TIMEOUT_MS"] { config.drainTimeout = .milliseconds(try positive(Int(value), "WORKER_DRAIN_TIMEOUT_MS")) }
        if let value = environment["PAYMENT_TIMEOUT_SECONDS"] { config.paymentTimeout = .seconds(try positive(Int(value), "PAYMENT_TIMEOUT_SECONDS")) }
        if let value = environment["MANUAL_PAYMENT_TIMEOUT_SECONDS"] {
            config.manualPaymentTimeout = .seconds(try positive(Int(value), "MANUAL_PAYMENT_TIMEOUT_SECONDS"))
        }
        if let value = environment["SWEEPER_INTERVAL_MS"] { config.sweeperInterval = .milliseconds(try positive(Int(value), "SWEEPER_INTERVAL_MS")) }
        config.providerFaults = environment["FAKE_PROVIDER_FAULTS"] == "true"
        if let value = environment["HEALTH_PORT"], !value.isEmpty {
            guard let port = Int(value), (1...65_535).contains(port) else { throw WorkerConfigurationError("HEALTH_PORT must be a port number") }
            config.healthPort = port
        }
        if let value = environment["HEALTH_HOST"], !value.isEmpty { config.healthHost = value }
        if let host = environment["SMTP_HOST"], !host.isEmpty {
            let portText = environment["SMTP_PORT"] ?? "25"
            guard let port = Int(portText), (1...65_535).contains(port) else { throw WorkerConfigurationError("SMTP_PORT must be a port number") }
            config.smtp = (host, port)
        }
        if let from = environment["MAIL_FROM"], !from.isEmpty {
            guard SMTPClient.isSafeAddress(from) else { throw WorkerConfigurationError("MAIL_FROM must be a bare email address") }
            config.mailFrom = from
        }
        if let value = environment["SAGA_STALL_SECONDS"] { config.saga.stall = .seconds(try positive(Int(value), "SAGA_STALL_SECONDS")) }
        if let value = environment["SAGA_SWEEP_INTERVAL_MS"] { config.saga.interval = .milliseconds(try positive(Int(value), "SAGA_SWEEP_INTERVAL_MS")) }
        if let value = environment["SAGA_MAX_REDRIVES"] { config.saga.maxRedrives = try positive(Int(value), "SAGA_MAX_REDRIVES") }
        if let value = environment["SAGA_LOOKBACK_SECONDS"] { config.saga.lookback = .seconds(try positive(Int(value), "SAGA_LOOKBACK_SECONDS")) }
        config.retention = try Retention.Settings.fromEnvironment(environment)
        if let value = environment["LOG_LEVEL"] {
            guard let level = Logger.Level(rawValue: value.lowercased()) else { throw WorkerConfigurationError("LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical") }
            config.logLevel = level
        }
        return config
    }

    private static func positive<T: BinaryInteger>(_ value: T?, _ name: String) throws -> T {
        guard let value, value > 0 else { throw WorkerConfigurationError("\(name) must be a positive number") }
        return value
    }
}

/// A configuration value that cannot be used.
public struct WorkerConfigurationError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Builds and runs a worker process: its pool, publisher, outbox relay and consumer, as
/// services of one group that shuts down gracefully on SIGTERM and SIGINT.
public enum WorkerMain {
    /// The services of a worker for `role`; tests run these in-process.
    public static func services(role: WorkerRole, configuration: WorkerConfiguration, logger: Logger) throws -> [any Service] {
        let pool = PostgresPool(configuration: configuration.postgres, maxConnections: configuration.poolSize, acquireTimeout: .seconds(10), logger: logger)
        var publisherOptions = AMQPPublisher.Options()
        publisherOptions.topology = configuration.names.topology(policy: configuration.policy)
        let publisher = AMQPPublisher(configuration: configuration.amqp, options: publisherOptions, logger: logger)
        let outbox = OutboxPublisher(publisher: publisher, pool: pool, exchange: configuration.names.eventsExchange, logger: logger)
        let handler: any EventHandler
        var extra: [any Service] = []
        switch role {
        case .stock: handler = StockHandler()
        case .order:
            handler = OrderHandler()
            extra.append(PaymentTimeoutSweeper(pool: pool, outbox: outbox, names: configuration.names, timeout: configuration.paymentTimeout,
                                               manualTimeout: configuration.manualPaymentTimeout, interval: configuration.sweeperInterval))
            extra.append(SagaReconciler(pool: pool, outbox: outbox, names: configuration.names, settings: configuration.saga, logger: logger))
            extra.append(Retention(pool: pool, settings: configuration.retention, logger: logger))
        case .notification:
            let channel: any NotificationChannel = configuration.smtp.map {
                SMTPEmailChannel(client: SMTPClient(host: $0.host, port: $0.port), from: configuration.mailFrom)
            } ?? RecordingEmailChannel()
            handler = NotificationHandler(channel: channel, templates: try NotificationTemplates())
        case .payment:
            let ledger = PostgresPool(configuration: configuration.postgres, maxConnections: configuration.poolSize, logger: logger)
            if configuration.providerFaults {
                // A drill setting: any order paid with tok_crash takes this process down.
                logger.warning("FAKE_PROVIDER_FAULTS is on: payments with tok_crash crash this worker; never enable it where customers order")
            }
            handler = PaymentHandler(provider: FakePaymentProvider(ledger: ledger, latency: configuration.providerLatency, faults: configuration.providerFaults))
            extra.append(ClosePoolOnShutdown(pool: ledger))
        }
        let status = WorkerStatus()
        let worker = Worker(role: role, handler: handler, names: configuration.names, policy: configuration.policy, pool: pool, amqp: configuration.amqp,
                            outbox: outbox, prefetch: configuration.prefetch, drainTimeout: configuration.drainTimeout, status: status, logger: logger)
        // The health server comes first so it stops last: while draining, /ready says so.
        var health: [any Service] = []
        if let port = configuration.healthPort {
            health.append(WorkerHealthServer.application(host: configuration.healthHost, port: port, role: role, status: status, pool: pool, logger: logger))
        }
        // ServiceGroup shuts services down in reverse order: the worker drains first, while
        // the pools and the publisher it needs are still open.
        return health + [ClosePoolOnShutdown(pool: pool)] + extra + [OutboxRelay(publisher: outbox), worker]
    }

    /// The `@main` body of `emporium-<role>-worker`.
    public static func run(role: WorkerRole) async {
        EmporiumLogging.bootstrap()
        EmporiumMetrics.bootstrap()
        do {
            let configuration = try WorkerConfiguration.fromEnvironment()
            var logger = Logger(label: "emporium.\(role.rawValue)-worker")
            logger.logLevel = configuration.logLevel
            // The worker drains first; the pool and relay close when the group ends.
            let tracing = try EmporiumTracing.bootstrap(serviceName: "emporium-\(role.rawValue)-worker")
            let group = ServiceGroup(
                // The exporter first, so it stops last and flushes the final spans.
                services: (tracing.map { [$0] } ?? []) + (try services(role: role, configuration: configuration, logger: logger)),
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
        } catch {
            FileHandle.standardError.write(Data("emporium-\(role.rawValue)-worker: \(error)\n".utf8))
            exit(2)
        }
    }
}

