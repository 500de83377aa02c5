import Foundation
import Hummingbird
import Logging
import Messaging
import Postgres

/// A worker's `GET /health` (the process runs; with its role, instance and messages handled),
/// `GET /ready` (subscribed to its queue and PostgreSQL answers, else 503) and
/// `GET /metrics` (Prometheus), on
/// `HEALTH_PORT`, for compose health checks and Kubernetes probes.
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
        router.get("/ready") { _, _ in
            let postgres: Bool
            do {
                try await pool.query("SELECT 1")
                postgres = true
            } catch {
                postgres = false
            }
            let rabbitmq = status.isConsuming
            let ready = postgres && rabbitmq
            let body = Readiness(status: ready ? "ready" : "not ready",
                                 checks: ["postgres": postgres ? "ok" : "unavailable", "rabbitmq": rabbitmq ? "ok" : "not consuming"])
            var headers: HTTPFields = [.contentType: ready ? "application/json" : "application/problem+json"]
            if !ready { headers[.retryAfter] = "5" }
            return Response(status: ready ? .ok : .serviceUnavailable, headers: headers,
                            body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(body))))
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "emporium-\(role.rawValue)-worker"), logger: logger)
    }
}
