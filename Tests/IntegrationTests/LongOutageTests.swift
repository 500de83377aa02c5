import Foundation
import Messaging
import TestSupport
import Testing

/// Servers away for minutes while customers check out, with production settings: nothing
/// is dead-lettered, nothing exits, and everything finishes by itself once the server is back.
/// `make test` takes each server away for 2 minutes; `make soak` for 5 (`OUTAGE_SECONDS`).
@Suite("Long outages with default settings", .serialized, .timeLimit(.minutes(20)))
struct LongOutageTests {
    /// How long the server stays away (`OUTAGE_SECONDS`, default 120).
    static let outage: Duration = .seconds(Int(ProcessInfo.processInfo.environment["OUTAGE_SECONDS"] ?? "") ?? 120)

    /// 150 customers check out: 40 before the outage, the rest spread over its first half,
    /// every fifth cancelling right after. The server goes away 10 s in.
    private func drill(_ service: String) async throws {
        try await OutageDrill.run(customers: 150) { drill in
            let started = ContinuousClock.now
            let outageStart = started + .seconds(10)
            let serverBack = outageStart + Self.outage
            let finishBy = serverBack + .seconds(60)
            let placing = Task {
                try await withThrowingTaskGroup(of: UUID.self) { group in
                    for (index, customer) in drill.customers.enumerated() {
                        let at =
                            index < 40
                            ? started + .milliseconds(250 * index)
                            : outageStart + (Self.outage / 2) * (Double(index - 40) / Double(drill.customers.count - 40))
                        group.addTask {
                            try await Task.sleep(until: at)
                            return try await drill.checkout(customer.token, cancel: index % 5 == 0, deadline: finishBy)
                        }
                    }
                    return try await group.reduce(into: [UUID]()) { $0.append($1) }
                }
            }
            try await Task.sleep(until: outageStart)
            try await OutageDrill.service(service, "stop")
            do {
                let notReady = await drill.allReady(answer: 503, within: .seconds(30))
                #expect(notReady.isEmpty, "/ready should answer 503 while \(service) is away: \(notReady)")
                try await Task.sleep(until: serverBack)
            } catch {
                try? await OutageDrill.service(service, "start")
                throw error
            }
            try await OutageDrill.service(service, "start")
            let orderIds = try await placing.value
            #expect(orderIds.count == drill.customers.count)
            // Everything finishes by itself within a minute of the server's return.
            let settled = await TestEnvironment.eventually(timeout: finishBy - .now) { await drill.settled(orderIds) }
            #expect(settled, "not settled within 60 s after \(service) came back")
            // The figures an operator (and an issue note) asks for; each test has its own database.
            let confirmed = try await drill.stack.count("SELECT count(*) FROM orders WHERE status = 'CONFIRMED'")
            let cancelled = try await drill.stack.count("SELECT count(*) FROM orders WHERE status = 'CANCELLED'")
            print(
                "outage drill: \(service) away \(Self.outage); \(orderIds.count) orders (40 before, \(orderIds.count - 40) during); "
                    + "all terminal \(ContinuousClock.now - serverBack) after its restart began; \(confirmed) CONFIRMED, \(cancelled) CANCELLED")
            try await drill.expectIntact(orderIds, context: "after \(service) was away \(Self.outage)")
            let stillDown = await drill.allReady(answer: 200, within: .seconds(30))
            #expect(stillDown.isEmpty, "/ready should answer 200 once \(service) is back: \(stillDown)")
            // Each process shuts down cleanly afterwards: it was alive all along.
            drill.workers.stopAll()
            #expect(drill.workers.exitStatuses.allSatisfy { $0 == 0 })
            drill.api.stop()
            #expect(drill.api.exitStatus == 0)
        }
    }

    @Test(
        "PostgreSQL stopped for minutes under checkout load, default settings: no dead letter, no exit, every order terminal within 60 s of its return, money and stock add up, no key in flight, /ready 503 then 200"
    )
    func postgresAway() async throws { try await drill("postgres") }

    @Test(
        "RabbitMQ stopped for minutes under checkout load, default settings: no dead letter, no exit, every order terminal within 60 s of its return, money and stock add up, no key in flight, /ready 503 then 200"
    )
    func rabbitMQAway() async throws { try await drill("rabbitmq") }
}
