import Domain
import Foundation
import HTTPTypes
import Payments
import Postgres
import TestSupport
import Testing

/// The Stripe adapter against localstripe (a stateful Stripe emulator that signs and sends
/// webhooks): the API and the payment worker talk to it as they would to Stripe.
@Suite("Stripe payments", .serialized)
struct StripeTests {
    /// The order's payment row: status, PaymentIntent, refunded so far, failure reason.
    func payment(_ stack: Stack, _ orderId: UUID) async throws -> (status: String, reference: String?, refunded: Int, reason: String?) {
        let row = try await stack.db.query(
            "SELECT status, provider_reference, refunded_cents, failure_reason FROM payments WHERE order_id = $1", [orderId])[0]
        return (
            try row.decode(String.self, "status"), try row.decode(String?.self, "provider_reference"), try row.decode(Int.self, "refunded_cents"),
            try row.decode(String?.self, "failure_reason")
        )
    }

    /// Waits until the order is in `status`.
    func awaitStatus(_ stack: Stack, _ orderId: UUID, _ status: String, timeout: Duration = .seconds(30)) async throws {
        let reached = await TestEnvironment.eventually(timeout: timeout) { (try? await stack.orderStatus(orderId).status) == status }
        let now = try await stack.orderStatus(orderId)
        try #require(reached, "order \(orderId) never reached \(status); it is \(now)")
    }

    /// Waits until the order's payment is in `status`.
    func awaitPayment(_ stack: Stack, _ orderId: UUID, _ status: String, timeout: Duration = .seconds(30)) async throws {
        let reached = await TestEnvironment.eventually(timeout: timeout) { (try? await payment(stack, orderId).status) == status }
        let now = try? await payment(stack, orderId)
        try #require(reached, "the payment of \(orderId) never reached \(status); it is \(String(describing: now))")
    }

    @Test("a card order is charged through Stripe and confirmed once, though Stripe's webhook races the worker's own confirmation")
    func happyPath() async throws {
        let stripe = Localstripe()
        try await Stack.run(stripe.options()) { stack in
            try await stripe.registerWebhook(port: stack.port)
            let (_, _, _, orderId) = try await stack.purchase(priceCents: 2_500, quantity: 2, paymentMethod: "pm_card_visa")
            try await awaitStatus(stack, orderId, "CONFIRMED")
            let paid = try await payment(stack, orderId)
            #expect(paid.status == "SUCCEEDED")
            let reference = try #require(paid.reference)
            #expect(reference.hasPrefix("pi_"))
            let intent = try await stripe.paymentIntent(reference)
            #expect(intent["status"] as? String == "succeeded")
            #expect(intent["amount"] as? Int == 5_000)
            #expect((intent["metadata"] as? [String: String])?["order_id"] == orderId.uuidString.lowercased())
            // localstripe sends payment_intent.succeeded for the charge the worker made: it is
            // recorded and applied, and changes nothing.
            let webhookSeen = await TestEnvironment.eventually(timeout: .seconds(20)) {
                (try? await stack.count("SELECT count(*) FROM inbox WHERE consumer = 'stripe-webhook'")) == 1
            }
            #expect(webhookSeen, "localstripe's webhook never arrived")
            #expect(await stack.awaitSettled(orderId))
            #expect(try await stack.count("SELECT count(*) FROM order_status_history WHERE order_id = $1 AND to_status = 'CONFIRMED'", [orderId]) == 1)
            #expect(try await stack.orderStatus(orderId).status == "CONFIRMED")
        }
    }

    @Test("a declined card cancels the order with Stripe's code and returns the stock")
    func decline() async throws {
        let stripe = Localstripe()
        try await Stack.run(stripe.options()) { stack in
            let (_, productId, _, orderId) = try await stack.purchase(stock: 5, quantity: 2, paymentMethod: "pm_card_chargeCustomerFail")
            let final = try await stack.awaitTerminal(orderId)
            #expect(final.status == "CANCELLED")
            #expect(final.reason == "payment_failed")
            let declined = try await payment(stack, orderId)
            #expect(declined.status == "FAILED")
            #expect(declined.reason == "card_declined")
            let released = await TestEnvironment.eventually { (try? await stack.stock(productId)) == 5 }
            #expect(released)
        }
    }

    @Test("with manual capture the charge is authorised at order time and captured when the order ships")
    func manualCaptureOnShipping() async throws {
        let stripe = Localstripe()
        try await Stack.run(stripe.options(capture: .manual)) { stack in
            let (admin, _, _, orderId) = try await stack.purchase(priceCents: 1_999, paymentMethod: "pm_card_visa")
            try await awaitStatus(stack, orderId, "CONFIRMED")
            let authorised = try await payment(stack, orderId)
            #expect(authorised.status == "AUTHORIZED")
            let reference = try #require(authorised.reference)
            #expect(try await stripe.paymentIntent(reference)["status"] as? String == "requires_capture")

            let shipped = try await stack.request(.put, "/api/v1/orders/\(orderId)/status", token: admin, json: ["status": "SHIPPED"])
            #expect(shipped.status == .ok, "\(shipped.body)")
            try await awaitPayment(stack, orderId, "SUCCEEDED")
            #expect(try await stripe.paymentIntent(reference)["status"] as? String == "succeeded")
            #expect(try await stack.orderStatus(orderId).status == "SHIPPED")
        }
    }

    @Test("cancelling an authorised order before it ships releases the authorisation, and nothing is charged")
    func cancelReleasesAuthorisation() async throws {
        let stripe = Localstripe()
        try await Stack.run(stripe.options(capture: .manual)) { stack in
            let (_, productId, customer, orderId) = try await stack.purchase(stock: 4, paymentMethod: "pm_card_visa")
            try await awaitStatus(stack, orderId, "CONFIRMED")
            let reference = try #require(try await payment(stack, orderId).reference)
            let cancelled = try await stack.request(.post, "/api/v1/orders/\(orderId)/cancel", token: customer.token)
            #expect(cancelled.status == .ok, "\(cancelled.body)")
            try await awaitPayment(stack, orderId, "VOIDED")
            #expect(try await stripe.paymentIntent(reference)["status"] as? String == "canceled")
            #expect(try await stripe.refunds(of: reference).isEmpty)
            let restored = await TestEnvironment.eventually { (try? await stack.stock(productId)) == 4 }
            #expect(restored)
        }
    }
}
