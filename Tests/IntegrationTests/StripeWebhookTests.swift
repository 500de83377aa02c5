import Domain
import Foundation
import HTTPTypes
import NIOCore
import Payments
import Postgres
import TestSupport
import Testing

/// Stripe's webhooks into Emporium, against localstripe: the client-confirmed flow (3-D Secure
/// included) advances on the webhook, a replayed event applies once, and anything not signed
/// with the endpoint's secret inside the tolerance is refused.
@Suite("Stripe webhooks", .serialized)
struct StripeWebhookTests {
    /// Places a `manual` order, waits until it awaits payment and opens its PaymentIntent;
    /// returns the order, the PaymentIntent id and its client secret.
    func clientConfirmedOrder(_ stack: Stack) async throws -> (orderId: UUID, token: String, intent: String, secret: String) {
        let (_, _, customer, orderId) = try await stack.purchase(priceCents: 4_200, paymentMethod: "manual")
        let awaiting = await TestEnvironment.eventually { (try? await stack.orderStatus(orderId).status) == "AWAITING_PAYMENT" }
        try #require(awaiting)
        let opened = try await stack.request(.post, "/api/v1/payments/intent", token: customer.token, json: ["order_id": orderId.uuidString])
        try #require(opened.status == .ok, "\(opened.body)")
        #expect(opened.json["provider"] as? String == "stripe")
        let secret = try #require(opened.json["client_secret"] as? String)
        let intent = try #require(secret.components(separatedBy: "_secret_").first)
        return (orderId, customer.token, intent, secret)
    }

    func post(_ stack: Stack, body: Data, signature: String?) async throws -> Stack.HTTPResult {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let signature { headers[HTTPField.Name("Stripe-Signature")!] = signature }
        return try await stack.client.execute(uri: "/api/v1/webhooks/stripe", method: .post, headers: headers, body: ByteBuffer(bytes: body)) {
            Stack.HTTPResult(status: $0.status, body: String(buffer: $0.body), headers: $0.headers)
        }
    }

    @Test("a payment the customer confirms in the browser, through 3-D Secure, confirms the order on Stripe's webhook; replayed 3 times it applies once")
    func clientConfirmedAndReplayed() async throws {
        let stripe = Localstripe()
        try await Stack.run(stripe.options()) { stack in
            try await stripe.registerWebhook(port: stack.port)
            let order = try await clientConfirmedOrder(stack)
            // The client's word is not enough: confirming through Emporium is refused with Stripe.
            let shortcut = try await stack.request(
                .post, "/api/v1/payments/confirm", token: order.token,
                json: ["payment_id": PaymentIds.paymentId(for: order.orderId).uuidString, "payment_method": "tok_visa"])
            #expect(shortcut.status == .conflict)

            let card = try await stripe.cardPaymentMethod("4000002500003155")  // asks for 3-D Secure
            #expect(try await stripe.confirmInBrowser(paymentIntent: order.intent, clientSecret: order.secret, paymentMethod: card) == "succeeded")
            let confirmed = await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.orderStatus(order.orderId).status) == "CONFIRMED" }
            let now = try await stack.orderStatus(order.orderId)
            #expect(confirmed, "the webhook never confirmed the order: \(now)")
            #expect(await stack.awaitSettled(order.orderId))

            // Stripe delivers again (a retry, or someone replaying a captured delivery, freshly
            // signed): each is acknowledged and none applies again.
            let events = try await stripe.events(type: "payment_intent.succeeded", objectId: order.intent)
            let event = try #require(events.first)
            let body = try JSONSerialization.data(withJSONObject: event)
            let recorded = try await stack.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.provider_event' AND order_id = $1", [order.orderId])
            #expect(recorded == 1)
            for _ in 1...3 {
                let header = WebhookSignature.header(for: body, secret: stripe.webhookSecret, timestamp: Int(Date().timeIntervalSince1970))
                let replayed = try await post(stack, body: body, signature: header)
                #expect(replayed.status == .ok)
                #expect(replayed.json["duplicate"] as? Bool == true)
            }
            #expect(
                try await stack.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.provider_event' AND order_id = $1", [order.orderId]) == recorded)
            #expect(try await stack.count("SELECT count(*) FROM order_status_history WHERE order_id = $1 AND to_status = 'CONFIRMED'", [order.orderId]) == 1)
            #expect(try await stack.count("SELECT count(*) FROM payments WHERE order_id = $1 AND status = 'SUCCEEDED'", [order.orderId]) == 1)
            #expect(try await stripe.paymentIntent(order.intent)["status"] as? String == "succeeded")
        }
    }

    @Test("a forged, altered, stale or unsigned webhook is refused with 400 and records nothing")
    func refusesUnsigned() async throws {
        let stripe = Localstripe()
        try await Stack.run(stripe.options()) { stack in
            let order = try await clientConfirmedOrder(stack)
            let event: [String: Any] = [
                "id": "evt_forged_\(UUID().uuidString.prefix(8))", "type": "payment_intent.succeeded",
                "data": ["object": ["id": order.intent, "object": "payment_intent", "metadata": ["order_id": order.orderId.uuidString.lowercased()]]],
            ]
            let body = try JSONSerialization.data(withJSONObject: event)
            let now = Int(Date().timeIntervalSince1970)
            let attempts: [(String, Data, String?)] = [
                ("forged", body, WebhookSignature.header(for: body, secret: "whsec_attacker", timestamp: now)),
                ("altered", body + Data(" ".utf8), WebhookSignature.header(for: body, secret: stripe.webhookSecret, timestamp: now)),
                ("stale", body, WebhookSignature.header(for: body, secret: stripe.webhookSecret, timestamp: now - 600)),
                ("unsigned", body, nil),
            ]
            for (name, payload, signature) in attempts {
                let refused = try await post(stack, body: payload, signature: signature)
                #expect(refused.status == .badRequest, "\(name): \(refused.status) \(refused.body)")
            }
            #expect(try await stack.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.provider_event' AND order_id = $1", [order.orderId]) == 0)
            #expect(try await stack.orderStatus(order.orderId).status == "AWAITING_PAYMENT")
            // The same event signed properly is taken: the refusals were about the signature.
            let signed = try await post(stack, body: body, signature: WebhookSignature.header(for: body, secret: stripe.webhookSecret, timestamp: now))
            #expect(signed.status == .ok)
            #expect(signed.json["duplicate"] as? Bool == false)
            // It names an unpaid PaymentIntent: the worker asks Stripe and the order still waits.
            #expect(await stack.awaitSettled(order.orderId))
            #expect(try await stack.orderStatus(order.orderId).status == "AWAITING_PAYMENT")
        }
    }
}

extension StripeWebhookTests {
    /// Posts a Stripe event of `type` about `object`, signed as localstripe would sign it (for
    /// the event types localstripe does not send itself).
    func postEvent(_ stack: Stack, _ stripe: Localstripe, type: String, object: [String: Any]) async throws -> Stack.HTTPResult {
        let event: [String: Any] = ["id": "evt_\(UUID().uuidString.prefix(12))", "object": "event", "type": type, "data": ["object": object]]
        let body = try JSONSerialization.data(withJSONObject: event)
        return try await post(
            stack, body: body, signature: WebhookSignature.header(for: body, secret: stripe.webhookSecret, timestamp: Int(Date().timeIntervalSince1970)))
    }

    @Test("a dispute flags the order for admins; a refund made in Stripe's dashboard is recorded and moves the order")
    func disputeAndDashboardRefund() async throws {
        let stripe = Localstripe()
        try await Stack.run(stripe.options()) { stack in
            let (admin, _, _, orderId) = try await stack.purchase(priceCents: 2_000, paymentMethod: "pm_card_visa")
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            let intent = try #require(
                try await stack.db.query("SELECT provider_reference FROM payments WHERE order_id = $1", [orderId])[0].decode(String?.self, "provider_reference")
            )

            // Disputes carry no Emporium metadata: the PaymentIntent names the payment.
            let disputed = try await postEvent(
                stack, stripe, type: "charge.dispute.created",
                object: ["id": "dp_\(UUID().uuidString.prefix(8))", "object": "dispute", "payment_intent": intent])
            #expect(disputed.status == .ok)
            let flagged = await TestEnvironment.eventually {
                (try? await stack.request(.get, "/api/v1/orders/\(orderId)", token: admin).json["payment_flag"] as? String) == "disputed"
            }
            #expect(flagged)

            // Someone refunds 300 in Stripe's dashboard; Stripe says charge.refunded.
            try await stripe.call(.POST, "/v1/refunds", form: [("payment_intent", intent), ("amount", "300")])
            let refunded = try await postEvent(
                stack, stripe, type: "charge.refunded", object: ["id": "ch_\(UUID().uuidString.prefix(8))", "object": "charge", "payment_intent": intent])
            #expect(refunded.status == .ok)
            let recorded = await TestEnvironment.eventually { (try? await stack.orderStatus(orderId).status) == "PARTIALLY_REFUNDED" }
            #expect(recorded)
            #expect(
                try await stack.count("SELECT count(*) FROM refunds WHERE order_id = $1 AND reason = 'made_at_provider' AND amount_cents = 300", [orderId]) == 1
            )
            #expect(try await stack.count("SELECT refunded_cents FROM payments WHERE order_id = $1", [orderId]) == 300)
        }
    }
}
