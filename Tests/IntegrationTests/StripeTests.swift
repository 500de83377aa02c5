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
            // recorded and applied, and changes nothing. (Other tests' events reach this stack
            // too, as every endpoint registered with localstripe gets every event: only this
            // order's count.)
            let webhookSeen = await TestEnvironment.eventually(timeout: .seconds(20)) {
                (try? await stack.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.provider_event' AND order_id = $1", [orderId])) == 1
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

    @Test("partial refunds by amount and by line sum to the total: each made once at Stripe, restocked lines back once, the order REFUNDED")
    func partialRefunds() async throws {
        let stripe = Localstripe()
        try await Stack.run(stripe.options()) { stack in
            let (admin, productId, customer, orderId) = try await stack.purchase(stock: 10, priceCents: 1_000, quantity: 3, paymentMethod: "pm_card_visa")
            try await awaitStatus(stack, orderId, "CONFIRMED")
            let reference = try #require(try await payment(stack, orderId).reference)
            #expect(try await stack.stock(productId) == 7)
            func refund(_ body: [String: Any], token: String? = nil) async throws -> Stack.HTTPResult {
                try await stack.request(.post, "/api/v1/orders/\(orderId)/refunds", token: token ?? admin, json: body)
            }
            // Customers cannot refund themselves.
            #expect(try await refund(["amount_cents": 100, "reason": "goodwill"], token: customer.token).status == .forbidden)

            let first = try await refund(["amount_cents": 500, "reason": "late delivery"])
            #expect(first.status == .accepted, "\(first.body)")
            #expect(first.json["status"] as? String == "PENDING")
            try await awaitStatus(stack, orderId, "PARTIALLY_REFUNDED")

            let second = try await refund(["lines": [["product_id": productId.uuidString, "quantity": 1]], "reason": "returned", "restock": true])
            #expect(second.status == .accepted, "\(second.body)")
            #expect(second.json["amount_cents"] as? Int == 1_000)
            let restocked = await TestEnvironment.eventually { (try? await stack.stock(productId)) == 8 }
            #expect(restocked, "the returned unit never came back to stock")

            // More than is left (1,500) is refused, and so is more of a line than was bought.
            let tooMuch = try await refund(["amount_cents": 1_501, "reason": "oops"])
            #expect(tooMuch.status == .conflict, "\(tooMuch.body)")
            let tooMany = try await refund(["lines": [["product_id": productId.uuidString, "quantity": 3]], "reason": "oops"])
            #expect(tooMany.status == .conflict, "\(tooMany.body)")
            #expect(try await refund(["amount_cents": 10, "lines": [], "reason": "both"]).status == .unprocessableContent)

            let last = try await refund(["amount_cents": 1_500, "reason": "order lost"])
            #expect(last.status == .accepted, "\(last.body)")
            try await awaitStatus(stack, orderId, "REFUNDED")
            #expect(await stack.awaitSettled(orderId))

            let paid = try await payment(stack, orderId)
            #expect(paid.status == "REFUNDED")
            #expect(paid.refunded == 3_000)
            let atStripe = try await stripe.refunds(of: reference)
            #expect(atStripe.count == 3)
            #expect(atStripe.compactMap { $0["amount"] as? Int }.reduce(0, +) == 3_000)
            #expect(try await stack.stock(productId) == 8, "a restocked line came back more than once")
            #expect(try await stack.count("SELECT count(*) FROM refunds WHERE order_id = $1 AND status = 'SUCCEEDED'", [orderId]) == 3)

            // The customer sees the refunds in their payment history, and nothing more can be refunded.
            let history = try await stack.request(.get, "/api/v1/payments/history", token: customer.token)
            let entry = try #require((history.json["items"] as? [[String: Any]])?.first)
            #expect((entry["refunds"] as? [[String: Any]])?.count == 3)
            #expect(entry["refunded_cents"] as? Int == 3_000)
            #expect(try await refund(["amount_cents": 1, "reason": "again"]).status == .conflict)
        }
    }

    @Test("an authorisation that lapsed before shipping cannot be captured: the payment is VOIDED and the order flagged for an admin")
    func expiredAuthorisation() async throws {
        let stripe = Localstripe()
        try await Stack.run(stripe.options(capture: .manual)) { stack in
            let (admin, _, _, orderId) = try await stack.purchase(paymentMethod: "pm_card_visa")
            try await awaitStatus(stack, orderId, "CONFIRMED")
            try await awaitPayment(stack, orderId, "AUTHORIZED")
            let reference = try #require(try await payment(stack, orderId).reference)
            // What Stripe does to an authorisation left uncaptured for about 7 days.
            try await stripe.call(.POST, "/v1/payment_intents/\(reference)/cancel", form: [])
            let shipped = try await stack.request(.put, "/api/v1/orders/\(orderId)/status", token: admin, json: ["status": "SHIPPED"])
            #expect(shipped.status == .ok)
            try await awaitPayment(stack, orderId, "VOIDED")
            #expect(try await payment(stack, orderId).reason == "authorization_expired")
            let order = try await stack.request(.get, "/api/v1/orders/\(orderId)", token: admin)
            #expect(order.json["payment_flag"] as? String == "authorization_expired")
            #expect(order.json["status"] as? String == "SHIPPED")
        }
    }
}
