import Domain
import HTTPCommon
import Hummingbird
import Logging
import Messaging
import Observability
import Postgres

/// A worker's `GET /health` (the process runs; with its role, instance and messages handled),
/// `GET /ready` (subscribed to its queue, PostgreSQL answers and the worker is not paused,
/// else 503 saying why) and `GET /metrics` (Prometheus), on `HEALTH_PORT`, for compose
/// health checks and Kubernetes probes. `/ready` answers within 2 s whatever the database
/// does, and probes it at most once a second however often it is called.
enum WorkerHealthServer {
    struct Health: ResponseEncodable {
        let status: String
        let role: String
        let instance: String
        let handled: Int
    }

    static func application(host: String, port: Int, role: WorkerRole, status: WorkerStatus, pool: PostgresPool, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        router.get("/health") { _, _ in
            Health(status: "ok", role: role.rawValue, instance: ProcessIdentity.current, handled: status.handled)
        }
        MetricsEndpoint.register(on: router)
        let database = CachedCheck { try await pool.ping() }
        router.get("/ready") { _, _ in
            let consuming = status.isConsuming
            let rabbitmq = CachedCheck.Result(ok: consuming, detail: consuming ? "ok" : (status.isDraining ? "draining" : "not consuming"))
            let paused = status.pause.map {
                ReadinessResponse.Paused(dependency: $0.dependency, reason: $0.reason, since: DeadLetterHeader.timestamp($0.since))
            }
            return try await ReadinessResponse.make(checks: [("postgres", database)], extra: ["rabbitmq": rabbitmq], paused: paused)
        }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: role.executableName), logger: logger)
    }
}
