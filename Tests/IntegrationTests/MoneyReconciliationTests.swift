import Domain
import Foundation
import Messaging
import Postgres
import TestSupport
import Testing

/// Money is reconciled with the provider: a charge made by a worker that died before it
/// could record it is found and refunded when the order is cancelled, exactly once.
@Suite("Payment reconciliation with the provider", .timeLimit(.minutes(4)))
struct MoneyReconciliationTests {
    /// Charges, refunds and our own records of one order.
    private func ledger(_ stack: Stack, _ orderId: UUID) async throws -> (charges: Int, refunds: Int, refundRows: Int, payment: String?) {
        let charges = try await stack.count(
            "SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND kind = 'charge' AND outcome = 'succeeded'", [orderId])
        let refunds = try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND kind = 'refund'", [orderId])
        let refundRows = try await stack.count("SELECT count(*) FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE p.order_id = $1", [orderId])
        let payment = try await stack.db.query("SELECT status FROM payments WHERE order_id = $1", [orderId]).first?.decode(String.self, "status")
        return (charges, refunds, refundRows, payment)
    }

    /// Whether the payment worker has handled the order's `type` event.
    private func handled(_ stack: Stack, _ type: String, _ orderId: UUID) async throws -> Bool {
        try await stack.count(
            "SELECT count(*) FROM outbox o JOIN inbox i ON i.message_id = o.id AND i.consumer = 'payment' WHERE o.order_id = $1 AND o.event_type = $2",
            [orderId, type]) > 0
    }

    @Test(
        "charged, worker killed before its commit, order cancelled: the charge is refunded exactly once (with the charge request redelivered, and with it lost)"
    )
    func chargedThenKilledThenCancelled() async throws {
        var options = Stack.Options()
        options.excludedRoles = [.payment]
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10)
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 0)
            for lost in [false, true] {
                let (_, token) = try await stack.customer()
                try await stack.addToCart(token, productId, quantity: 1)
                try workers.start(.payment)
                // The drill card charges at the provider, then kills the worker before its commit.
                let orderId = try await stack.placeOrder(token, paymentMethod: "tok_crash_after_charge")
                #expect(await TestEnvironment.eventually(timeout: .seconds(60)) { !workers.isRunning(.payment) })
                #expect(try await ledger(stack, orderId).charges == 1)
                #expect(try await ledger(stack, orderId).payment == nil, "the worker died before recording the payment")
                if lost {
                    // The charge request itself is gone too (purged): only the cancellation remains.
                    #expect(await TestEnvironment.eventually { (try? await stack.queueDepth(.payment)) == 1 })
                    #expect(try await stack.purge(.payment) == 1)
                }
                // The customer cancels; the order no longer awaits payment.
                let cancelled = try await stack.request(.post, "/api/v1/orders/\(orderId)/cancel", token: token)
                #expect(cancelled.status == .ok, "\(cancelled.body)")
                try workers.start(.payment)
                #expect(
                    await TestEnvironment.eventually(timeout: .seconds(60)) { (try? await ledger(stack, orderId).payment) == "REFUNDED" },
                    "payment worker log:\n\(workers.log(.payment).suffix(3000))")
                // Everything about this order has been handled: nothing left to change the outcome.
                #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.queueDepth(.payment)) == 0 })
                for type in lost ? ["order.cancelled"] : ["order.cancelled", "payment.requested"] {
                    #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await handled(stack, type, orderId)) == true }, "\(type) handled")
                }
                let final = try await ledger(stack, orderId)
                #expect(final.charges == 1)
                #expect(final.refunds == 1)
                #expect(final.refundRows == 1)
                #expect(try await stack.orderStatus(orderId).status == "CANCELLED")
                workers.stopAll()
            }
        }
    }
}
