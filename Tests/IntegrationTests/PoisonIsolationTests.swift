import Foundation
import Messaging
import OperatorTools
import Postgres
import TestSupport
import Testing

/// A message that crashes its worker every time must not take the healthy messages in
/// flight with it to the delivery limit.
@Suite("A crash-looping message among healthy ones", .timeLimit(.minutes(5)))
struct PoisonIsolationTests {
    @Test("a crash-looping message in a queue with 30 healthy orders in flight ends with exactly one dead letter and 30 confirmed orders")
    func oneDeadLetter() async throws {
        var options = Stack.Options()
        options.excludedRoles = [.payment]
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 1_000)
            var carts: [(token: String, method: String)] = []
            for index in 0..<31 {
                let (_, token) = try await stack.customer()
                try await stack.addToCart(token, productId, quantity: 1)
                carts.append((token, index == 7 ? "tok_crash" : "tok_visa"))
            }
            // The worker starts with a backlog: the poison sits among the healthy requests.
            var orderIds: [UUID] = []
            var poison: UUID?
            for cart in carts {
                let id = try await stack.placeOrder(cart.token, paymentMethod: cart.method)
                if cart.method == "tok_crash" { poison = id } else { orderIds.append(id) }
            }
            let poisonId = try #require(poison)
            #expect(await TestEnvironment.eventually(timeout: .seconds(60)) { (try? await stack.queueDepth(.payment)) == 31 })
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 5, extraEnvironment: ["WORKER_PREFETCH": "16"])
            try workers.start(.payment)
            // Restarted whenever it dies, as compose or Kubernetes would.
            var crashes = 0
            let deadline = ContinuousClock.now + .seconds(240)
            while ContinuousClock.now < deadline {
                let settled = (try? await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'CONFIRMED'", [orderIds])) == 30
                if settled, (try? await stack.deadLetters(.payment)) == 1 { break }
                if !workers.isRunning(.payment) {
                    crashes += 1
                    try workers.start(.payment)
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(try await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'CONFIRMED'", [orderIds]) == 30)
            #expect(try await stack.deadLetters(.payment) == 1)
            var filter = DeadLetterFilter()
            filter.orderId = poisonId.uuidString
            let letters = try await DeadLetters(amqp: stack.amqp, names: stack.names).list(filter)
            #expect(letters.count == 1, "the one dead letter is the poison")
            #expect(crashes >= Stack.Options().policy.deliveryLimit)
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM (SELECT order_id FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded' GROUP BY order_id HAVING count(*) > 1) AS d"
                ) == 0)
            workers.stopAll()
        }
    }
}
