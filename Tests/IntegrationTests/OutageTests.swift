import Foundation
import HTTPTypes
import Messaging
import Postgres
import TestSupport
import Testing

/// Restarts the shared servers, so `make test` runs this suite on its own, after the rest
/// (`swift test --filter OutageTests`), and the main run skips it.
@Suite("Outages: servers restarted while orders are in flight", .serialized, .timeLimit(.minutes(20)))
struct OutageTests {
    private func restart(_ service: String) async throws {
        let (status, output) = try await TestEnvironment.run(
            TestEnvironment.repositoryRoot.appendingPathComponent("scripts/restart-service.sh").path, [service])
        guard status == 0 else { throw TestFailure("restarting \(service) failed: \(output)") }
    }

    /// Places an order the way a careful client does: on a 503 or a lost connection it
    /// tries again with the same Idempotency-Key.
    private func placeWithRetry(_ stack: Stack, _ token: String) async throws -> UUID {
        let key = UUID().uuidString
        for _ in 0..<120 {
            if let response = try? await stack.request(
                .post, "/api/v1/orders", token: token, json: Stack.orderBody(), headers: [HTTPField.Name("Idempotency-Key")!: key])
            {
                if response.status == .created, let id = uuid(response.json["id"]) { return id }
                guard response.status == .serviceUnavailable || response.status == .conflict || response.status == .internalServerError else {
                    throw TestFailure("order refused: \(response.status) \(response.body)")
                }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw TestFailure("the API never accepted the order")
    }

    private func outage(_ service: String) async throws {
        var options = Stack.Options()
        options.providerLatency = .milliseconds(20)
        // Retries that outlast a server restart, as the production defaults (1 s, 5 s, 30 s) do.
        options.policy.retryDelays = [.milliseconds(500), .seconds(2), .seconds(5)]
        options.policy.maxAttempts = 8
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let initialStock = 10_000
            let productId = try await stack.product(admin, stock: initialStock)
            var tokens: [String] = []
            for index in 0..<200 {
                let (_, token) = try await stack.customer("outage\(index)-\(UUID().uuidString.prefix(6))")
                try await stack.addToCart(token, productId, quantity: 1 + index % 2)
                tokens.append(token)
            }
            let placing = Task {
                try await withThrowingTaskGroup(of: UUID.self) { group in
                    for (index, token) in tokens.enumerated() {
                        if index % 20 == 0 { try await Task.sleep(for: .milliseconds(300)) }
                        group.addTask { try await placeWithRetry(stack, token) }
                    }
                    return try await group.reduce(into: [UUID]()) { $0.append($1) }
                }
            }
            try await Task.sleep(for: .milliseconds(1_200))
            try await restart(service)
            let orderIds = try await placing.value
            #expect(orderIds.count == 200)

            // One deadline for all of them, then the verdict per order.
            _ = await TestEnvironment.eventually(timeout: .seconds(120)) {
                (try? await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status NOT IN ('CONFIRMED', 'CANCELLED')", [orderIds])) == 0
            }
            var confirmed: [UUID] = []
            for orderId in orderIds {
                let final = try await stack.orderStatus(orderId)
                if final.status == "CONFIRMED" {
                    confirmed.append(orderId)
                } else {
                    Issue.record("order \(orderId) ended \(final.status) \(final.reason ?? "")")
                }
            }
            #expect(confirmed.count == 200)
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM (SELECT order_id FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded' GROUP BY order_id HAVING count(*) > 1) AS doubles"
                ) == 0)
            #expect(try await stack.count("SELECT count(*) FROM payments WHERE status = 'SUCCEEDED'") == confirmed.count)
            let sold = try await stack.count("SELECT coalesce(sum(quantity), 0)::int8 FROM order_items WHERE order_id = ANY($1)", [confirmed])
            #expect(try await stack.stock(productId) == initialStock - sold)
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM orders WHERE id = ANY($1) AND (SELECT count(*) FROM order_status_history h WHERE h.order_id = orders.id) <> 3",
                    [orderIds]) == 0)
        }
    }

    /// The HTTP status `url` answers, or nil when nothing answers.
    private func httpStatus(_ url: String) async -> Int? {
        guard let (_, output) = try? await TestEnvironment.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", url]) else {
            return nil
        }
        return Int(output.trimmingCharacters(in: .whitespacesAndNewlines)).flatMap { $0 == 0 ? nil : $0 }
    }

    @Test("GET /ready of the API and of a worker is 503 while PostgreSQL or RabbitMQ is stopped, and 200 once it is back")
    func readiness() async throws {
        try await Stack.apiOnly { stack in
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 0)
            try workers.start(.stock)
            try await workers.awaitReady([(.stock, 1)])
            let workerReady = "http://127.0.0.1:\(try #require(workers.healthPort(.stock)))/ready"
            for service in ["postgres", "rabbitmq"] {
                let (stopped, output) = try await TestEnvironment.run(
                    TestEnvironment.repositoryRoot.appendingPathComponent("scripts/restart-service.sh").path, [service, "stop"])
                #expect(stopped == 0, "\(output)")
                let apiDown = await TestEnvironment.eventually(timeout: .seconds(30)) {
                    (try? await stack.request(.get, "/ready"))?.status == .serviceUnavailable
                }
                let workerDown = await TestEnvironment.eventually(timeout: .seconds(30)) { await httpStatus(workerReady) == 503 }
                let (started, startOutput) = try await TestEnvironment.run(
                    TestEnvironment.repositoryRoot.appendingPathComponent("scripts/restart-service.sh").path, [service, "start"])
                #expect(apiDown, "the API's /ready should be 503 while \(service) is stopped")
                #expect(workerDown, "the worker's /ready should be 503 while \(service) is stopped")
                #expect(started == 0, "\(startOutput)")
                #expect(
                    await TestEnvironment.eventually(timeout: .seconds(60)) { (try? await stack.request(.get, "/ready"))?.status == .ok },
                    "API /ready after \(service) is back")
                #expect(
                    await TestEnvironment.eventually(timeout: .seconds(60)) { await httpStatus(workerReady) == 200 }, "worker /ready after \(service) is back")
            }
            // /health stays 200 throughout: the process is alive, only not ready.
            #expect(await httpStatus(workerReady.replacingOccurrences(of: "/ready", with: "/health")) == 200)
            workers.stopAll()
            #expect(workers.exitStatuses.allSatisfy { $0 == 0 })
        }
    }

    @Test("RabbitMQ restarted while 200 orders are in flight: all terminal, no double charge, stock adds up")
    func rabbitMQRestart() async throws { try await outage("rabbitmq") }

    @Test("PostgreSQL restarted while 200 orders are in flight: all terminal, no double charge, stock adds up")
    func postgresRestart() async throws { try await outage("postgres") }
}
