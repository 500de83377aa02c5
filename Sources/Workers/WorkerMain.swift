import AMQP
import Domain
import Foundation
import Logging
import Messaging
import Observability
import Payments
import Postgres
import ServiceLifecycle
import Settings
import Store

/// Builds and runs a worker process: its pool, publisher, outbox relay and consumer, as
/// services of one group that shuts down gracefully on SIGTERM and SIGINT.
package enum WorkerMain {
    /// The services of a worker for `role`; tests run these in-process.
    package static func services(role: WorkerRole, configuration: WorkerConfiguration, logger: Logger) throws -> [any Service] {
        let sessionName = role.executableName
        let pool = PostgresPool(
            configuration: configuration.postgres.named(sessionName), maxConnections: configuration.poolSize,
            acquireTimeout: configuration.shared.acquireTimeout, logger: logger)
        var publisherOptions = AMQPPublisher.Options()
        publisherOptions.topology = configuration.names.topology(policy: configuration.policy)
        let publisher = AMQPPublisher(configuration: configuration.amqp, options: publisherOptions, logger: logger)
        let marks = PostgresPool(
            configuration: configuration.postgres.named("\(sessionName) marks"), maxConnections: 1,
            acquireTimeout: configuration.shared.acquireTimeout, logger: logger)
        let outbox = OutboxPublisher(publisher: publisher, pool: pool, markPool: marks, exchange: configuration.names.eventsExchange, logger: logger)
        let status = WorkerStatus()
        /// The role's consumer over `handler`, whose `Input` is the role's routing table.
        func worker<Handler: EventHandler>(_ handler: Handler) -> any Service {
            precondition(Handler.role == role, "the \(role.rawValue) worker was given the \(Handler.role.rawValue) handler")
            return Worker(
                handler: handler, names: configuration.names, policy: configuration.policy, pool: pool, amqp: configuration.amqp,
                outbox: outbox, prefetch: configuration.effectivePrefetch, batchSize: configuration.batchSize,
                concurrency: configuration.effectiveConcurrency(for: role), batchWait: configuration.batchWait, drainTimeout: configuration.drainTimeout,
                status: status, logger: logger)
        }
        let consumer: any Service
        var extra: [any Service] = []
        switch role {
        case .stock: consumer = worker(StockHandler())
        case .order:
            consumer = worker(OrderHandler())
            extra.append(
                PaymentTimeoutSweeper(
                    pool: pool, outbox: outbox, names: configuration.names, timeout: configuration.paymentTimeout,
                    manualTimeout: configuration.manualPaymentTimeout, interval: configuration.sweeperInterval))
            extra.append(
                SagaReconciler(
                    pool: pool, outbox: outbox, names: configuration.names, settings: configuration.saga,
                    backlog: WorkQueueBacklog(amqp: configuration.amqp), logger: logger))
            extra.append(Retention(pool: pool, settings: configuration.retention, logger: logger))
        case .notification:
            let channel: any NotificationChannel =
                configuration.smtp.map {
                    SMTPEmailChannel(client: SMTPClient(host: $0.host, port: $0.port), from: configuration.mailFrom)
                } ?? RecordingEmailChannel()
            consumer = worker(NotificationHandler(channel: channel, templates: try NotificationTemplates()))
            extra.append(
                WebhookDispatcher(
                    pool: pool, publisher: publisher, names: configuration.names,
                    sender: WebhookSender(settings: configuration.webhooks.sender), settings: configuration.webhooks,
                    logger: logger))
        case .payment:
            let ledger = PostgresPool(
                configuration: configuration.postgres.named("\(sessionName) ledger"), maxConnections: configuration.poolSize, logger: logger)
            if configuration.providerFaults {
                // A drill setting: any order paid with tok_crash takes this process down.
                logger.warning("FAKE_PROVIDER_FAULTS is on: payments with tok_crash crash this worker; never enable it where customers order")
            }
            var provider: any PaymentProvider =
                if let stripe = configuration.payments.stripe {
                    StripePaymentProvider(
                        client: StripeClient(settings: stripe), captureMode: configuration.payments.capture, objects: ProviderObjectStore(pool: ledger))
                } else {
                    FakePaymentProvider(ledger: ledger, latency: configuration.providerLatency, faults: configuration.providerFaults)
                }
            if let cents = configuration.crashAfterChargeCents {
                logger.warning("PAYMENT_DRILL_CRASH_AFTER_CHARGE_CENTS is set: this worker dies after charging any order of \(cents) cents")
                provider = CrashAfterChargeDrill(inner: provider, amountCents: cents)
            }
            logger.info("payments through \(provider.name), capture \(provider.captureMode.rawValue)")
            consumer = worker(PaymentHandler(provider: provider))
            extra.append(ClosePoolOnShutdown(pool: ledger))
            extra.append(
                PaymentReconcileSweep(
                    reconciler: PaymentReconciler(provider: provider, pool: pool, exchange: configuration.names.eventsExchange, logger: logger),
                    outbox: outbox, settings: configuration.paymentReconcile, logger: logger))
        }
        // The health server comes first so it stops last: while draining, /ready says so.
        var health: [any Service] = []
        if let port = configuration.healthPort {
            health.append(WorkerHealthServer.application(host: configuration.healthHost, port: port, role: role, status: status, pool: pool, logger: logger))
        }
        // ServiceGroup shuts services down in reverse order: the worker drains first, while
        // the pools and the publisher it needs are still open.
        return health + [ClosePoolOnShutdown(pool: pool), ClosePoolOnShutdown(pool: marks)] + extra + [
            OutboxRelay(publisher: outbox, grace: configuration.shared.relayGrace), consumer,
        ]
    }

    /// The `@main` body of `emporium-<role>-worker`.
    package static func run(role: WorkerRole) async {
        EmporiumLogging.bootstrap()
        EmporiumMetrics.bootstrap()
        do {
            let configuration = try WorkerConfiguration.fromEnvironment()
            var logger = Logger(label: "emporium.\(role.rawValue)-worker")
            logger.logLevel = configuration.logLevel
            // The worker drains first; the pool and relay close when the group ends.
            let tracing = try EmporiumTracing.bootstrap(serviceName: role.executableName)
            let group = ServiceGroup(
                // The exporter first, so it stops last and flushes the final spans.
                services: (tracing.map { [$0] } ?? []) + (try services(role: role, configuration: configuration, logger: logger)),
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
        } catch {
            FileHandle.standardError.write(Data("\(role.executableName): \(error)\n".utf8))
            exit(2)
        }
    }
}

extension WorkerRole {
    /// The role's executable (`emporium-stock-worker`): also its service name in traces, its
    /// health server's name and what its PostgreSQL sessions report as `application_name`
    /// (the after-commit marks' session adds ` marks`, the payment provider's ledger ` ledger`).
    package var executableName: String { "emporium-\(rawValue)-worker" }
}
