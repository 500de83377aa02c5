import Domain
import Foundation
import Messaging
import Postgres
import TestSupport
import Testing

/// Workers scale by replica count: several processes per role share the role's queue.
@Suite("Scaling workers by replica count", .timeLimit(.minutes(20)))
struct ScalingTests {
    /// Places `perCustomer` orders for each of `customers` new customers, each customer one
    /// order after another; every tenth order is declined. Returns the order ids.
    static func placeOrders(_ stack: Stack, productId: UUID, customers: Int, perCustomer: Int) async throws -> [UUID] {
        try await withThrowingTaskGroup(of: [UUID].self) { group in
            for customer in 0..<customers {
                group.addTask {
                    let (_, token) = try await stack.customer("scale\(customer)-\(UUID().uuidString.prefix(6))")
                    var ids: [UUID] = []
                    for index in 0..<perCustomer {
                        try await stack.addToCart(token, productId, quantity: 1 + (customer + index) % 3)
                        let method = (customer * perCustomer + index) % 10 == 0 ? "tok_chargeDeclined" : "tok_visa"
                        ids.append(try await stack.placeOrder(token, paymentMethod: method))
                    }
                    return ids
                }
            }
            return try await group.reduce(into: [UUID]()) { $0 += $1 }
        }
    }

    /// Every order terminal, declined ones cancelled for payment, each effect applied once:
    /// one charge and one payment per confirmed order, one reservation per order, one
    /// notification per order, no transition recorded twice, and stock that adds up.
    static func expectEachAppliedOnce(_ stack: Stack, _ orderIds: [UUID], productId: UUID, initialStock: Int) async throws {
        let settled = await TestEnvironment.eventually(timeout: .seconds(240)) {
            (try? await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status NOT IN ('CONFIRMED', 'CANCELLED')", [orderIds])) == 0
        }
        let inFlight = try await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status NOT IN ('CONFIRMED', 'CANCELLED')", [orderIds])
        #expect(settled, "orders still in flight: \(inFlight)")
        let expectedDeclined = orderIds.count / 10
        #expect(
            try await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'CONFIRMED'", [orderIds]) == orderIds.count - expectedDeclined)
        #expect(
            try await stack.count(
                "SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'CANCELLED' AND cancellation_reason = 'payment_failed'", [orderIds])
                == expectedDeclined)
        #expect(
            try await stack.count(
                "SELECT count(*) FROM (SELECT order_id FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded' GROUP BY order_id HAVING count(*) > 1) AS doubles"
            ) == 0)
        #expect(
            try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded'") == orderIds.count
                - expectedDeclined)
        #expect(try await stack.count("SELECT count(*) FROM payments WHERE status = 'SUCCEEDED'") == orderIds.count - expectedDeclined)
        #expect(
            try await stack.count("SELECT count(*) FROM (SELECT order_id FROM stock_reservations GROUP BY order_id, product_id HAVING count(*) > 1) AS doubles")
                == 0)
        #expect(
            try await stack.count(
                "SELECT count(*) FROM (SELECT order_id FROM order_status_history GROUP BY order_id, to_status HAVING count(*) > 1) AS doubles") == 0)
        let confirmed = try await stack.db.query("SELECT id FROM orders WHERE id = ANY($1) AND status = 'CONFIRMED'", [orderIds]).map {
            try $0.decode(UUID.self, "id")
        }
        let sold = try await stack.count("SELECT coalesce(sum(quantity), 0)::int8 FROM order_items WHERE order_id = ANY($1)", [confirmed])
        #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == initialStock - sold })
        #expect(
            await TestEnvironment.eventually(timeout: .seconds(60)) {
                (try? await stack.count("SELECT count(*) FROM notifications WHERE order_id = ANY($1)", [orderIds])) == orderIds.count
            })
        #expect(
            try await stack.count("SELECT count(*) FROM (SELECT order_id FROM notifications GROUP BY order_id, template HAVING count(*) > 1) AS doubles") == 0)
    }

    /// A product with plenty of stock, and the listed worker replicas started and ready.
    static func productAndReplicas(_ stack: Stack, providerLatencyMS: Int, _ replicas: [(WorkerRole, Int)]) async throws -> (UUID, WorkerProcesses) {
        let admin = try await stack.admin()
        let productId = try await stack.product(admin, stock: initialStock)
        let workers = try WorkerProcesses(stack: stack, providerLatencyMS: providerLatencyMS)
        for (role, replica) in replicas { try workers.start(role, replica: replica) }
        try await workers.awaitReady(replicas)
        return (productId, workers)
    }

    static let initialStock = 100_000

    @Test("3 replicas of every worker take 500 orders: all terminal, every replica worked, nothing applied twice")
    func threeReplicasEach() async throws {
        try await Stack.apiOnly { stack in
            let replicas = WorkerRole.allCases.flatMap { role in (1...3).map { (role, $0) } }
            let (productId, workers) = try await Self.productAndReplicas(stack, providerLatencyMS: 5, replicas)

            let orderIds = try await Self.placeOrders(stack, productId: productId, customers: 50, perCustomer: 10)
            #expect(orderIds.count == 500)
            try await Self.expectEachAppliedOnce(stack, orderIds, productId: productId, initialStock: Self.initialStock)

            // The inbox names the process that handled each message: all three of every role.
            let rows = try await stack.db.query("SELECT consumer, handled_by, count(*) AS n FROM inbox GROUP BY consumer, handled_by")
            var byRole: [String: [String: Int]] = [:]
            for row in rows {
                byRole[try row.decode(String.self, "consumer"), default: [:]][try row.decode(String?.self, "handled_by") ?? "-"] = try row.decode(Int.self, "n")
            }
            for role in WorkerRole.allCases {
                let handlers = Set(byRole[role.rawValue].map { Array($0.keys) } ?? [])
                #expect(handlers == Set((1...3).map { "\(role.rawValue)-\($0)" }), "\(role.rawValue): \(byRole[role.rawValue] ?? [:])")
            }
            workers.stopAll()
            #expect(workers.exitStatuses.allSatisfy { $0 == 0 }, "SIGTERM should exit 0")
        }
    }

    @Test("2 of 3 payment replicas stopped mid-stream (SIGTERM and kill -9): the third finishes, nothing lost or doubled")
    func stopTwoOfThreePaymentReplicas() async throws {
        try await Stack.apiOnly { stack in
            var replicas: [(WorkerRole, Int)] = [(.payment, 1), (.payment, 2), (.payment, 3)]
            replicas += WorkerRole.allCases.filter { $0 != .payment }.map { ($0, 1) }
            let (productId, workers) = try await Self.productAndReplicas(stack, providerLatencyMS: 40, replicas)

            let placing = Task { try await Self.placeOrders(stack, productId: productId, customers: 20, perCustomer: 10) }
            // Once payments are flowing through all three, two of them go away.
            _ = await TestEnvironment.eventually(timeout: .seconds(60)) {
                (try? await stack.count("SELECT count(DISTINCT handled_by) FROM inbox WHERE consumer = 'payment'")) == 3
            }
            let (status, _) = workers.terminate(.payment, replica: 2)
            #expect(status == 0)
            workers.kill9(.payment, replica: 3)
            let stoppedAt = try await stack.db.query("SELECT now() AS t")[0].decode(Date.self, "t")
            #expect(workers.isRunning(.payment, replica: 1))

            let orderIds = try await placing.value
            #expect(orderIds.count == 200)
            try await Self.expectEachAppliedOnce(stack, orderIds, productId: productId, initialStock: Self.initialStock)
            // After the stop only the survivor handled payment messages.
            let after = try await stack.db.query(
                "SELECT DISTINCT handled_by FROM inbox WHERE consumer = 'payment' AND processed_at > $1 + interval '1 second'", [stoppedAt])
            #expect(try after.map { try $0.decode(String.self, "handled_by") } == ["payment-1"])
            workers.stopAll()
        }
    }
}
