import Domain
import Foundation
import Payments
import Postgres
import TestSupport
import Testing

/// The payment reconciler against localstripe: a charge Stripe made while the payment worker
/// was killed before its commit, its message lost and no webhook delivered, is found by
/// comparing Stripe's PaymentIntents with Emporium's payments and repaired once, by the CLI
/// (after a dry run that changes nothing) and by the payment worker's own schedule.
@Suite("Stripe reconciliation", .serialized, .timeLimit(.minutes(5)))
struct StripeReconciliationTests {
    /// The worker charges at Stripe and dies (the drill), and its message is purged: Stripe
    /// holds the charge, Emporium holds an order awaiting payment and no payment row.
    func chargeThenLose(_ stack: Stack, _ workers: WorkerProcesses, _ stripe: Localstripe, token: String) async throws -> (orderId: UUID, intent: String) {
        try workers.start(.payment)
        let orderId = try await stack.placeOrder(token, paymentMethod: "pm_card_visa")
        let died = await TestEnvironment.eventually(timeout: .seconds(60)) { !workers.isRunning(.payment) }
        try #require(died, "the drill did not kill the payment worker; its log:\n\(workers.log(.payment).suffix(2000))")
        let intents = try await stripe.paymentIntents(ofOrder: orderId)
        try #require(intents.count == 1)
        #expect(intents[0]["status"] as? String == "succeeded")
        #expect(try await stack.count("SELECT count(*) FROM payments WHERE order_id = $1", [orderId]) == 0, "the worker died before its commit")
        #expect(await TestEnvironment.eventually { (try? await stack.queueDepth(.payment)) == 1 })
        #expect(try await stack.purge(.payment) == 1)
        #expect(try await stack.orderStatus(orderId).status == "AWAITING_PAYMENT")
        return (orderId, try #require(intents[0]["id"] as? String))
    }

    @Test("a charge made by a worker killed before its commit, with its message lost, is found and the order confirmed once")
    func repairsLostCharge() async throws {
        let stripe = Localstripe()
        var options = stripe.options()
        options.excludedRoles = [.payment]
        try await Stack.run(options) { stack in
            // No webhook is registered: Stripe's own notice of the charge never arrives.
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10, priceCents: 1_234)
            var environment = stripe.environment()
            environment["PAYMENT_DRILL_CRASH_AFTER_CHARGE_CENTS"] = "1234"
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 0, extraEnvironment: environment)
            defer { workers.stopAll() }
            let cli = CLI(stack: stack, overrides: stripe.environment())

            // 1. By the CLI: a dry run reports and changes nothing; the real run repairs.
            let (_, token) = try await stack.customer()
            try await stack.addToCart(token, productId, quantity: 1)
            let lost = try await chargeThenLose(stack, workers, stripe, token: token)
            try workers.start(.payment)  // the same drill: it finds the charge and does not crash again

            let dry = try cli.run("payments", "reconcile", "--dry-run", "--since", "1h")
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(dry.stdout.contains("charge_for_awaiting_order order=\(lost.orderId.uuidString.lowercased()) ref=\(lost.intent)"), "\(dry.stdout)")
            #expect(dry.stdout.contains("(dry run)"))
            #expect(try await stack.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.provider_event' AND order_id = $1", [lost.orderId]) == 0)

            let real = try cli.run("payments", "reconcile", "--since", "1h")
            #expect(real.status == 0, "\(real.stderr)")
            #expect(real.stdout.contains("record the charge and confirm the order"), "\(real.stdout)")
            let confirmed = await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.orderStatus(lost.orderId).status) == "CONFIRMED" }
            #expect(confirmed, "payment worker log:\n\(workers.log(.payment).suffix(2000))")
            let row = try await stack.db.query("SELECT status, provider_reference FROM payments WHERE order_id = $1", [lost.orderId])[0]
            #expect(try row.decode(String.self, "status") == "SUCCEEDED")
            #expect(try row.decode(String?.self, "provider_reference") == lost.intent)
            #expect(try await stripe.paymentIntents(ofOrder: lost.orderId).count == 1, "charged twice")

            // A second run finds nothing left to repair for it.
            let again = try cli.run("payments", "reconcile", "--since", "1h")
            #expect(again.status == 0)
            #expect(!again.stdout.contains(lost.orderId.uuidString.lowercased()), "\(again.stdout)")
            workers.stopAll()

            // 2. By the payment worker's schedule, with nobody running the CLI.
            let (_, other) = try await stack.customer()
            try await stack.addToCart(other, productId, quantity: 1)
            let second = try await chargeThenLose(stack, workers, stripe, token: other)
            let scheduled = try WorkerProcesses(
                stack: stack, providerLatencyMS: 0, extraEnvironment: stripe.environment().merging(["PAYMENT_RECONCILE_INTERVAL_SECONDS": "2"]) { $1 })
            defer { scheduled.stopAll() }
            try scheduled.start(.payment)
            let swept = await TestEnvironment.eventually(timeout: .seconds(40)) { (try? await stack.orderStatus(second.orderId).status) == "CONFIRMED" }
            #expect(swept, "payment worker log:\n\(scheduled.log(.payment).suffix(2000))")
            #expect(try await stripe.paymentIntents(ofOrder: second.orderId).count == 1)
            #expect(try await stack.count("SELECT count(*) FROM order_status_history WHERE order_id = $1 AND to_status = 'CONFIRMED'", [second.orderId]) == 1)
        }
    }

    @Test("a charge whose order was cancelled while the charging worker was dead, every message lost, is refunded by the reconciler")
    func refundsChargeForCancelledOrder() async throws {
        let stripe = Localstripe()
        var options = stripe.options()
        options.excludedRoles = [.payment]
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10, priceCents: 1_234)
            var environment = stripe.environment()
            environment["PAYMENT_DRILL_CRASH_AFTER_CHARGE_CENTS"] = "1234"
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 0, extraEnvironment: environment)
            defer { workers.stopAll() }
            let (_, token) = try await stack.customer()
            try await stack.addToCart(token, productId, quantity: 1)
            let lost = try await chargeThenLose(stack, workers, stripe, token: token)
            // The customer cancels; that message is lost too.
            let cancelled = try await stack.request(.post, "/api/v1/orders/\(lost.orderId)/cancel", token: token)
            #expect(cancelled.status == .ok, "\(cancelled.body)")
            #expect(await TestEnvironment.eventually { (try? await stack.queueDepth(.payment)) == 1 })
            #expect(try await stack.purge(.payment) == 1)

            let reconciled = try CLI(stack: stack, overrides: stripe.environment()).run("payments", "reconcile", "--since", "1h")
            #expect(reconciled.status == 0, "\(reconciled.stderr)")
            #expect(reconciled.stdout.contains("charge_for_cancelled_order order=\(lost.orderId.uuidString.lowercased())"), "\(reconciled.stdout)")
            try workers.start(.payment)
            let refunded = await TestEnvironment.eventually(timeout: .seconds(30)) {
                (try? await stack.db.query("SELECT status FROM payments WHERE order_id = $1", [lost.orderId]).first?.decode(String.self, "status"))
                    == "REFUNDED"
            }
            #expect(refunded, "payment worker log:\n\(workers.log(.payment).suffix(2000))")
            let atStripe = try await stripe.refunds(of: lost.intent)
            #expect(atStripe.count == 1)
            #expect(atStripe.first?["amount"] as? Int == 1_234)
            #expect(try await stack.orderStatus(lost.orderId).status == "CANCELLED")
        }
    }

    @Test("an order Emporium holds as paid that the provider never charged is flagged charge_missing (fake provider)")
    func flagsMissingCharge() async throws {
        try await Stack.run { stack in
            let (admin, _, _, orderId) = try await stack.purchase()
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            // The provider's record of the charge is gone (what a charge Emporium believed in but
            // the provider never made looks like).
            try await stack.db.query("DELETE FROM fake_provider_operations WHERE order_id = $1", [orderId])
            let dry = try CLI(stack: stack).run("payments", "reconcile", "--dry-run", "--since", "1h")
            #expect(dry.stdout.contains("charge_missing order=\(orderId.uuidString.lowercased())"), "\(dry.stdout)\(dry.stderr)")
            #expect(try await stack.request(.get, "/api/v1/orders/\(orderId)", token: admin).json["payment_flag"] == nil)
            let real = try CLI(stack: stack).run("payments", "reconcile", "--since", "1h")
            #expect(real.status == 0)
            #expect(try await stack.request(.get, "/api/v1/orders/\(orderId)", token: admin).json["payment_flag"] as? String == "charge_missing")
        }
    }
}
