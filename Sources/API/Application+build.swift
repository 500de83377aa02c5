import Hummingbird
import Logging
import Postgres
import ServiceLifecycle

/// Builds the API application: routes, the database pool and their lifecycle. The
/// `emporium-api` executable only calls this and runs it, so tests run the same code.
public func buildApplication(configuration: APIConfiguration) -> some ApplicationProtocol {
    var logger = Logger(label: "emporium.api")
    logger.logLevel = configuration.logLevel
    let pool = PostgresPool(
        configuration: configuration.postgres, maxConnections: configuration.poolSize,
        acquireTimeout: configuration.acquireTimeout, logger: logger)
    let router = Router()
    router.middlewares.add(LogRequestsMiddleware(.debug))
    HealthController(checks: [PostgresReadiness(pool: pool), RabbitMQReadiness(configuration: configuration.amqp)])
        .register(on: router)
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "emporium-api"),
        services: [PoolService(pool: pool)],
        logger: logger)
}

/// Closes the pool when the service group shuts down (SIGTERM/SIGINT).
struct PoolService: Service {
    let pool: PostgresPool
    func run() async throws {
        try? await gracefulShutdown()
        await pool.close()
    }
}
