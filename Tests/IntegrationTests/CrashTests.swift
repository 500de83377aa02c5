import Domain
import Foundation
import HTTPTypes
import Messaging
import Postgres
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Crashing workers mid-flight", .timeLimit(.minutes(20)))
struct CrashTests {
    @Test("kill -9 of each worker while 100 orders are in flight: all terminal, no double charge, stock adds up")
    func killNineEachWorker() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await stack.admin()
            let initialStock = 1_000
            let productId = try await stack.product(admin, stock: initialStock)
            var customers: [(token: String, method: String)] = []
            for index in 0..<100 {
                let (_, token) = try await stack.customer("crash\(index)-\(UUID().uuidString.prefix(6))")
                try await stack.addToCart(token, productId, quantity: 1 + index % 3)
                customers.append((token, index % 10 == 0 ? "tok_chargeDeclined" : "tok_visa"))
            }
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 20)
            for role in WorkerRole.allCases { try workers.start(role) }

            // Orders go in over about four seconds while each worker in turn is killed and
            // restarted.
            let placing = Task {
                try await withThrowingTaskGroup(of: UUID.self) { group in
                    for (index, customer) in customers.enumerated() {
                        if index % 10 == 0 { try await Task.sleep(for: .milliseconds(400)) }
                        group.addTask { try await stack.placeOrder(customer.token, paymentMethod: customer.method) }
                    }
                    return try await group.reduce(into: [UUID]()) { $0.append($1) }
                }
            }
            for role in [WorkerRole.payment, .stock, .order, .notification] {
                try await Task.sleep(for: .milliseconds(700))
                workers.kill9(role)
                try await Task.sleep(for: .milliseconds(300))
                try workers.start(role)
            }
            let orderIds = try await placing.value
            #expect(orderIds.count == 100)

            var confirmed: [UUID] = []
            var cancelled: [UUID] = []
            for orderId in orderIds {
                let final = try await stack.awaitTerminal(orderId, timeout: .seconds(120))
                if final.status == "CONFIRMED" {
                    confirmed.append(orderId)
                } else if final.status == "CANCELLED" {
                    cancelled.append(orderId)
                } else {
                    Issue.record("order \(orderId) stuck in \(final.status)")
                }
            }
            #expect(confirmed.count == 90)
            #expect(cancelled.count == 10)
            #expect(try await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND cancellation_reason = 'payment_failed'", [cancelled]) == 10)

            // No order charged more than once at the provider, and our records agree with it.
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM (SELECT order_id FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded' GROUP BY order_id HAVING count(*) > 1) AS doubles"
                ) == 0)
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded'") == 90)
            #expect(try await stack.count("SELECT count(*) FROM payments WHERE status = 'SUCCEEDED'") == 90)

            // Stock adds up: what confirmed orders bought is gone, everything else is back.
            let sold = try await stack.count("SELECT coalesce(sum(quantity), 0)::int8 FROM order_items WHERE order_id = ANY($1)", [confirmed])
            #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == initialStock - sold })
            // The stock worker commits reservations on `order.confirmed`, after the order is
            // terminal, and it may be the worker that was just restarted.
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(60)) {
                    (try? await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = ANY($1) AND status <> 'COMMITTED'", [confirmed])) == 0
                })
            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = ANY($1) AND status <> 'RELEASED'", [cancelled])) == 0
                })
            // Every order is told exactly once.
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(60)) {
                    (try? await stack.count("SELECT count(DISTINCT order_id) FROM notifications WHERE order_id = ANY($1)", [orderIds])) == 100
                })
            #expect(try await stack.count("SELECT count(*) FROM notifications WHERE order_id = ANY($1)", [orderIds]) == 100)

            workers.stopAll()
            #expect(workers.exitStatuses.allSatisfy { $0 == 0 }, "SIGTERM should exit 0:\n\(workers.log(.payment).suffix(2000))")
        }
    }
}
