import AMQP
import Foundation
import Hummingbird
import Messaging
import Postgres
import Synchronization

/// Readiness of the API's two dependencies, each a ``CachedCheck``: probed at most once a
/// second, answered within 1.5 s whatever the peer does.
enum Readiness {
    /// PostgreSQL is ready when a pooled session answers `SELECT 1`.
    static func postgres(_ pool: PostgresPool) -> CachedCheck {
        CachedCheck { try await pool.query("SELECT 1") }
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

    struct Status: ResponseEncodable {
        let status: String
        let checks: [String: String]?
    }

    func register(on router: Router<AppRequestContext>) {
        router.get("/health") { _, _ in Status(status: "ok", checks: nil) }
        router.get("/ready") { _, _ in try await ready() }
    }

    private func ready() async throws -> Response {
        let results = await withTaskGroup(of: (String, CachedCheck.Result).self) { group in
            for (name, check) in checks {
                group.addTask { (name, await check.result()) }
            }
            var results: [String: CachedCheck.Result] = [:]
            for await (name, result) in group { results[name] = result }
            return results
        }
        let failing = results.filter { !$0.value.ok }.keys.sorted()
        let report = results.mapValues(\.detail)
        if failing.isEmpty {
            return try jsonResponse(.ok, Status(status: "ready", checks: report), contentType: "application/json")
        }
        // RFC 9457 problem body; dependency errors stay in the logs, not in the response.
        return try jsonResponse(
            .serviceUnavailable,
            Problem(
                type: "about:blank", title: "Service Unavailable", status: 503,
                detail: "not ready: \(failing.joined(separator: ", ")) unavailable", checks: report),
            contentType: "application/problem+json", extraHeaders: [.retryAfter: "5"])
    }
}

/// An RFC 9457 problem document.
struct Problem: Encodable {
    let type: String
    let title: String
    let status: Int
    let detail: String
    var checks: [String: String]? = nil
}

func jsonResponse<T: Encodable>(_ status: HTTPResponse.Status, _ value: T, contentType: String, extraHeaders: HTTPFields = [:]) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var headers = extraHeaders
    headers[.contentType] = contentType
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}
