import AMQP
import Foundation
import Hummingbird
import Postgres

/// Answers whether the dependencies a request needs are reachable right now.
public protocol ReadinessCheck: Sendable {
    /// The dependency's name in the readiness report.
    var name: String { get }
    /// Throws when the dependency cannot serve.
    func check() async throws
}

/// PostgreSQL is ready when a pooled session answers `SELECT 1`.
struct PostgresReadiness: ReadinessCheck {
    let pool: PostgresPool
    var name: String { "postgres" }
    func check() async throws { try await pool.query("SELECT 1") }
}

/// RabbitMQ is ready when a connection and login succeed.
struct RabbitMQReadiness: ReadinessCheck {
    let configuration: AMQPConfiguration
    var name: String { "rabbitmq" }
    func check() async throws {
        var config = configuration
        config.connectTimeout = .seconds(2)
        config.connectionName = "emporium-readiness"
        let connection = try await AMQPConnection.connect(configuration: config)
        await connection.close()
    }
}

/// `GET /health` (the process is alive) and `GET /ready` (its dependencies answer).
struct HealthController: Sendable {
    let checks: [any ReadinessCheck]

    struct Status: ResponseEncodable {
        let status: String
        let checks: [String: String]?
    }

    func register(on router: Router<AppRequestContext>) {
        router.get("/health") { _, _ in Status(status: "ok", checks: nil) }
        router.get("/ready") { _, _ in try await ready() }
    }

    private func ready() async throws -> Response {
        let results = await withTaskGroup(of: (String, String?).self) { group in
            for check in checks {
                group.addTask {
                    do {
                        try await check.check()
                        return (check.name, nil)
                    } catch {
                        return (check.name, "unavailable")
                    }
                }
            }
            var results: [String: String?] = [:]
            for await (name, failure) in group { results[name] = failure }
            return results
        }
        let failing = results.filter { $0.value != nil }.keys.sorted()
        let report = results.mapValues { $0 ?? "ok" }
        if failing.isEmpty {
            return try jsonResponse(.ok, Status(status: "ready", checks: report), contentType: "application/json")
        }
        // RFC 9457 problem body; dependency errors stay in the logs, not in the response.
        return try jsonResponse(
            .serviceUnavailable,
            Problem(
                type: "about:blank", title: "Service Unavailable", status: 503,
                detail: "not ready: \(failing.joined(separator: ", ")) unreachable", checks: report),
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
