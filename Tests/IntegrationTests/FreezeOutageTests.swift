import Foundation
import Messaging
import TestSupport
import Testing

/// A server that stops answering without closing anything (all its processes `SIGSTOP`ped:
/// a hung host or a network partition) must cost callers a prompt 503, never a hang.
@Suite("Frozen servers and a blocked broker", .serialized, .timeLimit(.minutes(10)))
struct FreezeOutageTests {
    static let freeze: Duration = .seconds(30)

    /// Places `count` orders (waiting for each 201) for the first customers not used yet.
    private func place(_ drill: OutageDrill, _ range: Range<Int>) async throws -> [UUID] {
        try await withThrowingTaskGroup(of: UUID.self) { group in
            for index in range {
                group.addTask { try await drill.checkout(drill.customers[index].token, cancel: index % 5 == 0, deadline: .now + .seconds(120)) }
            }
            return try await group.reduce(into: [UUID]()) { $0.append($1) }
        }
    }

    @Test(
        "PostgreSQL frozen for 30 s: a request that needs the database and GET /ready each answer 503 with Retry-After within 3 s; after SIGCONT everything resumes with nothing lost"
    )
    func postgresFrozen() async throws {
        try await OutageDrill.run(customers: 40) { drill in
            var orderIds = try await place(drill, 0..<20)
            let token = drill.customers[0].token
            try await OutageDrill.service("postgres", "freeze")
            let thawAt = ContinuousClock.now + Self.freeze
            do {
                // Callers are answered promptly all through the freeze, while the API's pooled
                // sessions time out, are dropped and fail to reopen.
                for round in 0..<4 {
                    let started = ContinuousClock.now
                    let (status, body) = try await drill.api.request("GET", "/api/v1/orders", headers: ["Authorization": "Bearer \(token)"])
                    let elapsed = ContinuousClock.now - started
                    #expect(status == 503, "round \(round): GET /api/v1/orders answered \(status) \(body)")
                    #expect(elapsed < .seconds(3), "round \(round): the database request took \(elapsed)")
                    let ready = await OutageDrill.probe("\(drill.api.url)/ready")
                    #expect(ready.status == 503, "round \(round): /ready answered \(ready.status)")
                    #expect(ready.elapsed < .seconds(3), "round \(round): /ready took \(ready.elapsed)")
                    #expect(ready.headers.lowercased().contains("retry-after"), "round \(round): /ready without Retry-After")
                    try await Task.sleep(for: .seconds(3))
                }
                // A placement during the freeze is refused with a retryable answer, not hung.
                let (status, _) = try await drill.api.request(
                    "POST", "/api/v1/orders", json: Stack.orderBody(),
                    headers: ["Authorization": "Bearer \(drill.customers[30].token)", "Idempotency-Key": UUID().uuidString])
                #expect(status == 503)
                try await Task.sleep(until: thawAt)
            } catch {
                try? await OutageDrill.service("postgres", "thaw")
                throw error
            }
            try await OutageDrill.service("postgres", "thaw")
            orderIds += try await place(drill, 20..<40)
            #expect(await TestEnvironment.eventually(timeout: .seconds(90)) { await drill.settled(orderIds) }, "not settled after the thaw")
            try await drill.expectIntact(orderIds, context: "after PostgreSQL was frozen")
            #expect(await drill.allReady(answer: 200, within: .seconds(30)).isEmpty)
        }
    }

    @Test(
        "RabbitMQ frozen for 30 s: placements still answer 201 (the outbox keeps the events), /ready answers 503 within 2 s, and the events flow once it thaws")
    func rabbitMQFrozen() async throws {
        try await OutageDrill.run(customers: 40) { drill in
            var orderIds = try await place(drill, 0..<10)
            try await OutageDrill.service("rabbitmq", "freeze")
            let thawAt = ContinuousClock.now + Self.freeze
            do {
                // Every /ready call answers within 2 s; once the readiness check has run, it says 503.
                var sawNotReady = false
                let deadline = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < deadline && !sawNotReady {
                    let ready = await OutageDrill.probe("\(drill.api.url)/ready")
                    #expect(ready.elapsed < .seconds(2), "/ready took \(ready.elapsed)")
                    sawNotReady = ready.status == 503
                }
                #expect(sawNotReady, "/ready never answered 503 while RabbitMQ was frozen")
                // Orders are still taken: their events wait in the outbox.
                let started = ContinuousClock.now
                orderIds += try await place(drill, 10..<30)
                #expect(ContinuousClock.now - started < .seconds(15), "placements waited on the frozen broker")
                #expect(try await drill.stack.count("SELECT count(*) FROM outbox WHERE published_at IS NULL") > 0)
                try await Task.sleep(until: thawAt)
            } catch {
                try? await OutageDrill.service("rabbitmq", "thaw")
                throw error
            }
            try await OutageDrill.service("rabbitmq", "thaw")
            orderIds += try await place(drill, 30..<40)
            #expect(await TestEnvironment.eventually(timeout: .seconds(120)) { await drill.settled(orderIds) }, "not settled after the thaw")
            try await drill.expectIntact(orderIds, context: "after RabbitMQ was frozen")
            #expect(await drill.allReady(answer: 200, within: .seconds(60)).isEmpty)
        }
    }

    @Test(
        "a memory alarm blocks the publishers: placements still answer 201, the API's /ready says the broker blocks it, and the events flow once the alarm clears"
    )
    func brokerBlocked() async throws {
        try await OutageDrill.run(customers: 20) { drill in
            var orderIds = try await place(drill, 0..<5)
            #expect(await TestEnvironment.eventually(timeout: .seconds(60)) { await drill.settled(orderIds) })
            // A watermark below what the broker already uses raises the memory alarm at once.
            try await TestEnvironment.rabbitmqctl(["-q", "set_vm_memory_high_watermark", "0.000001"])
            do {
                orderIds += try await place(drill, 5..<15)
                let blocked = await TestEnvironment.eventually(timeout: .seconds(30)) {
                    let (status, body) = (try? await drill.api.request("GET", "/ready")) ?? (0, "")
                    return status == 503 && body.contains("blocked")
                }
                #expect(blocked, "the API's /ready should report the blocked broker")
            } catch {
                _ = try? await TestEnvironment.rabbitmqctl(["-q", "set_vm_memory_high_watermark", "0.4"])
                throw error
            }
            _ = try await TestEnvironment.rabbitmqctl(["-q", "set_vm_memory_high_watermark", "0.4"])
            orderIds += try await place(drill, 15..<20)
            #expect(await TestEnvironment.eventually(timeout: .seconds(120)) { await drill.settled(orderIds) }, "not settled after the alarm cleared")
            try await drill.expectIntact(orderIds, context: "after the memory alarm")
            #expect(await drill.allReady(answer: 200, within: .seconds(60)).isEmpty)
        }
    }
}
