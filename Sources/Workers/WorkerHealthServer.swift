import Foundation
import Hummingbird
import Logging
import Messaging
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

    struct Readiness: Encodable {
        let status: String
        let checks: [String: String]
        /// Present while the worker holds its messages because a dependency is unavailable.
        let paused: Paused?
    }

    struct Paused: Encodable {
        let dependency: String
        let reason: String
        let since: String
    }

    static func application(host: String, port: Int, role: WorkerRole, status: WorkerStatus, pool: PostgresPool, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        router.get("/health") { _, _ in
            Health(status: "ok", role: role.rawValue, instance: ProcessIdentity.current, handled: status.handled)
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: EmporiumMetrics.render())))
        }
        let database = CachedCheck { try await pool.query("SELECT 1") }
        router.get("/ready") { _, _ in
            let postgres = await database.result()
            let rabbitmq = status.isConsuming
            let pause = status.pause
            let ready = postgres.ok && rabbitmq && pause == nil
            let body = Readiness(
                status: ready ? "ready" : (pause != nil ? "paused" : "not ready"),
                checks: ["postgres": postgres.detail, "rabbitmq": rabbitmq ? "ok" : (status.isDraining ? "draining" : "not consuming")],
                paused: pause.map { Paused(dependency: $0.dependency, reason: $0.reason, since: DeadLetterHeader.timestamp($0.since)) })
            var headers: HTTPFields = [.contentType: ready ? "application/json" : "application/problem+json"]
            if !ready { headers[.retryAfter] = "5" }
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            return Response(status: ready ? .ok : .serviceUnavailable, headers: headers,
                            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(body))))
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "emporium-\(role.rawValue)-worker"), logger: logger)
    }
}
