import AMQP
import HTTPCommon
import Hummingbird
import Observability
import Postgres
import Synchronization

/// Readiness of the API's two dependencies, each a ``CachedCheck``: probed at most once a
/// second, answered within 1.5 s whatever the peer does.
enum Readiness {
    /// PostgreSQL is ready when a pooled session answers `SELECT 1`.
    static func postgres(_ pool: PostgresPool) -> CachedCheck {
        CachedCheck { try await pool.ping() }
    }

    /// RabbitMQ is ready when a round trip on a kept connection succeeds and the broker is
    /// not blocking the API's publisher (a memory or disk alarm): placements still succeed
    /// then, their events wait in the outbox, but the instance says it is degraded.
    static func rabbitMQ(_ configuration: AMQPConfiguration, publisher: AMQPPublisher) -> CachedCheck {
        var config = configuration
        config.connectTimeout = .milliseconds(1200)
        config.rpcTimeout = .milliseconds(1200)
        config.connectionName = "emporium-readiness"
        let connection = LazyAMQPConnection(configuration: config)
        return CachedCheck {
            if let reason = publisher.blockedReason { return .init(ok: false, detail: "blocked by the broker (\(reason))") }
            do {
                try await connection.ping()
                return .init(ok: true, detail: "ok")
            } catch {
                return .init(ok: false, detail: "unavailable")
            }
        }
    }
}

/// One AMQP connection opened on first use and reopened after it broke, for readiness
/// round trips (a check must not open a connection per call).
final class LazyAMQPConnection: Sendable {
    private let configuration: AMQPConfiguration
    private let connection = Mutex<AMQPConnection?>(nil)

    init(configuration: AMQPConfiguration) { self.configuration = configuration }

    func ping() async throws {
        let existing = connection.withLock { $0 }
        let current: AMQPConnection
        if let existing {
            current = existing
        } else {
            current = try await AMQPConnection.connect(configuration: configuration)
            connection.withLock { $0 = current }
        }
        try await current.ping()
    }
}

/// `GET /health` (the process is alive) and `GET /ready` (its dependencies answer).
struct HealthController: Sendable {
    let checks: [(name: String, check: CachedCheck)]

    struct Alive: ResponseEncodable {
        let status: String
    }

    func register(on router: Router<AppRequestContext>) {
        router.get("/health") { _, _ in Alive(status: "ok") }
        router.get("/ready") { _, _ in try await ReadinessResponse.make(checks: checks) }
    }
}
