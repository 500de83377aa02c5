import API
import Foundation
import Hummingbird
import HummingbirdTesting
import Settings
import TestSupport
import Testing

@Suite("API health and readiness", .timeLimit(.minutes(10)))
struct HealthTests {
    @Test("GET /health answers 200 while the process runs")
    func health() async throws {
        let app = try await buildApplication(configuration: try apiTestConfiguration())
        try await app.test(.live) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"status\":\"ok\""))
            }
        }
    }

    @Test("GET /ready answers 200 when PostgreSQL and RabbitMQ answer")
    func ready() async throws {
        let app = try await buildApplication(configuration: try apiTestConfiguration())
        try await app.test(.live) { client in
            // /ready answers within its deadline even while its first checks still connect
            // (503, retry): on a loaded machine the first answer may come before they finish.
            var body = ""
            let ready = try await TestEnvironment.eventually(timeout: .seconds(30)) {
                try await client.execute(uri: "/ready", method: .get) { response in
                    body = String(buffer: response.body)
                    return response.status == .ok
                }
            }
            #expect(ready, "\(body)")
            #expect(body.contains("\"postgres\":\"ok\""))
            #expect(body.contains("\"rabbitmq\":\"ok\""))
        }
    }

    @Test("GET /ready answers 503 with a problem body when a dependency is unreachable")
    func notReady() async throws {
        var config = try apiTestConfiguration()
        config.postgres.port = 1
        config.amqp.port = 1
        let app = try await buildApplication(configuration: config)
        try await app.test(.live) { client in
            try await client.execute(uri: "/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.contentType] == "application/problem+json")
                let body = String(buffer: response.body)
                #expect(body.contains("\"status\":503"))
                #expect(body.contains("postgres"))
                #expect(body.contains("rabbitmq"))
                #expect(!body.contains("refused"))  // internal error text stays in the logs
            }
        }
    }

    @Test("a data route answers 503 with a problem body, promptly, while PostgreSQL is unreachable")
    func databaseDown() async throws {
        var config = try apiTestConfiguration()
        config.postgres.port = 1
        let app = try await buildApplication(configuration: config)
        try await app.test(.live) { client in
            let start = ContinuousClock.now
            try await client.execute(uri: "/api/v1/products", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(response.headers[.retryAfter] != nil)
                #expect(!String(buffer: response.body).contains("Connection refused"))
            }
            // Bounded by the connect timeout and the pool's acquire timeout, not a hang.
            #expect(ContinuousClock.now - start < .seconds(15))
        }
    }

    @Test("malformed configuration is refused with a message")
    func badConfiguration() throws {
        #expect(throws: ConfigurationError.self) { try APIConfiguration.fromEnvironment(["HTTP_PORT": "eighty"]) }
        #expect(throws: ConfigurationError.self) { try APIConfiguration.fromEnvironment(["LOG_LEVEL": "loud"]) }
        #expect(throws: (any Error).self) { try APIConfiguration.fromEnvironment(["DATABASE_URL": "nonsense"]) }
        #expect(throws: ConfigurationError.self) { try APIConfiguration.fromEnvironment(["BCRYPT_COST": "99"]) }
    }

    @Test("the API refuses to start without a JWT secret of at least 32 characters")
    func missingSecret() async throws {
        var config = try apiTestConfiguration()
        config.jwtSecret = "short"
        await #expect(throws: ConfigurationError.self) { _ = try await buildApplication(configuration: config) }
    }

    @Test("the API refuses a JWT secret published with Emporium (the old development default, the compose example)")
    func publishedSecret() async throws {
        for secret in ["local-development-secret-change-me-0123456789", "change-me-to-at-least-32-random-characters"] {
            var config = try apiTestConfiguration()
            config.jwtSecret = secret
            await #expect(throws: ConfigurationError.self) { _ = try await buildApplication(configuration: config) }
        }
        #expect(throws: ConfigurationError.self) { try APIConfiguration.fromEnvironment(["TRUSTED_PROXIES": "10.0.0.0/33"]) }
        #expect(throws: ConfigurationError.self) { try APIConfiguration.fromEnvironment(["METRICS_PORT": "many"]) }
    }
}
