import Foundation
import HTTPTypes
import TestSupport
import Testing

@Suite("Order lifecycle after placement: customer cancel, refunds, shipping", .timeLimit(.minutes(10)))
struct OrderLifecycleTests {
    @Test("customer cancel after payment ends CANCELLED with a recorded refund and released stock, once")
    func cancelAfterPayment() async throws {
        try await Stack.run { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10, priceCents: 2_000)
            let (_, alice) = try await stack.customer()
            let (_, bob) = try await stack.customer()
            try await stack.addToCart(alice, productId, quantity: 3)
            let orderId = try await stack.placeOrder(alice)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            #expect(try await stack.stock(productId) == 7)

            #expect(try await stack.request(.post, "/api/v1/orders/\(orderId)/cancel", token: bob).status == .notFound)
            let cancelled = try await stack.request(.post, "/api/v1/orders/\(orderId)/cancel", token: alice)
            #expect(cancelled.status == .ok)
            #expect(cancelled.json["status"] as? String == "CANCELLED")
            #expect(cancelled.json["cancellation_reason"] as? String == "customer")
            #expect(try await stack.request(.post, "/api/v1/orders/\(orderId)/cancel", token: alice).status == .conflict)

            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count(
                        "SELECT count(*) FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE p.order_id = $1 AND r.amount_cents = 6000", [orderId]))
                        == 1
                })
            #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == 10 })
            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count("SELECT count(*) FROM notifications WHERE order_id = $1 AND template = 'payment_refunded'", [orderId])) == 1
                })
            #expect(await stack.awaitSettled(orderId), "the order's events were never all consumed")
            #expect(try await stack.stock(productId) == 10)  // released once
            #expect(try await stack.count("SELECT count(*) FROM payments WHERE order_id = $1 AND status = 'REFUNDED'", [orderId]) == 1)
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND kind = 'refund'", [orderId]) == 1)
            let history = try await stack.request(.get, "/api/v1/payments/history", token: alice)
            #expect((history.json["items"] as? [[String: Any]])?.first?["refunded_cents"] as? Int == 6_000)
        }
    }

    @Test("admin ships and delivers along allowed transitions; a shipped order cannot be cancelled")
    func shipping() async throws {
        try await Stack.run { stack in
            let (admin, _, (_, alice), orderId) = try await stack.purchase(stock: 10)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            let path = "/api/v1/orders/\(orderId)/status"
            #expect(try await stack.request(.put, path, token: alice, json: ["status": "SHIPPED"]).status == .forbidden)
            #expect(try await stack.request(.put, path, token: admin, json: ["status": "DELIVERED"]).status == .conflict)
            #expect(try await stack.request(.put, path, token: admin, json: ["status": "CANCELLED"]).status == .unprocessableContent)
            #expect(try await stack.request(.put, path, token: admin, json: ["status": "SHIPPED"]).json["status"] as? String == "SHIPPED")
            #expect(try await stack.request(.post, "/api/v1/orders/\(orderId)/cancel", token: alice).status == .conflict)
            #expect(try await stack.request(.put, path, token: admin, json: ["status": "DELIVERED"]).json["status"] as? String == "DELIVERED")
            #expect(try await stack.request(.put, path, token: admin, json: ["status": "SHIPPED"]).status == .conflict)
            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count(
                        "SELECT count(*) FROM notifications WHERE order_id = $1 AND template IN ('order_shipped', 'order_delivered')", [orderId])) == 2
                })
            // Rows are marked published in the background once the broker confirmed them.
            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count("SELECT count(*) FROM outbox WHERE order_id = $1 AND published_at IS NULL", [orderId])) == 0
                })
        }
    }
}

@Suite("Server-side pricing and cart expiry", .timeLimit(.minutes(10)))
struct PricingTests {
    @Test("tax and shipping are computed on the server; the charge is the grand total; idle carts expire")
    func pricing() async throws {
        var options = Stack.Options()
        options.pricing = (1_900, 499, 5_000)
        try await Stack.run(options) { stack in
            let (_, productId, (userId, token)) = try await stack.filledCart(stock: 10, priceCents: 1_050, quantity: 2)
            var body = Stack.orderBody()
            body["tax_cents"] = 0
            body["shipping_cents"] = 0
            let placed = try await stack.request(.post, "/api/v1/orders", token: token, json: body, headers: [HTTPField.Name("Idempotency-Key")!: "p1"])
            #expect(placed.json["subtotal_cents"] as? Int == 2_100)
            #expect(placed.json["tax_cents"] as? Int == 399)  // 19 % of 21.00, rounded
            #expect(placed.json["shipping_cents"] as? Int == 499)
            #expect(placed.json["total_cents"] as? Int == 2_998)
            let orderId = try #require(uuid(placed.json["id"]))
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            #expect(try await stack.count("SELECT amount_cents FROM payments WHERE order_id = $1", [orderId]) == 2_998)

            try await stack.addToCart(token, productId, quantity: 5)
            let big = try await stack.request(
                .post, "/api/v1/orders", token: token, json: Stack.orderBody(), headers: [HTTPField.Name("Idempotency-Key")!: "p2"])
            #expect(big.json["shipping_cents"] as? Int == 0)  // free over 50.00

            // A cart idle past the expiry is emptied on its next use.
            try await stack.addToCart(token, productId, quantity: 1)
            try await stack.db.query("UPDATE carts SET updated_at = now() - interval '73 hours' WHERE user_id = $1", [userId])
            #expect(((try await stack.request(.get, "/api/v1/cart", token: token)).json["items"] as? [Any])?.isEmpty == true)
        }
    }
}

@Suite("Client-confirmed payments", .timeLimit(.minutes(10)))
struct ManualPaymentTests {
    @Test("an order paid with `manual` waits; intent shows the amount; confirm charges once; others get 404")
    func intentAndConfirm() async throws {
        try await Stack.run { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 5, priceCents: 1_500)
            let (_, alice) = try await stack.customer()
            let (_, bob) = try await stack.customer()
            try await stack.addToCart(alice, productId, quantity: 2)
            let orderId = try await stack.placeOrder(alice, paymentMethod: "manual")
            #expect(await TestEnvironment.eventually { (try? await stack.orderStatus(orderId).status) == "AWAITING_PAYMENT" })
            #expect(await stack.awaitSettled(orderId), "the order's events were never all consumed")
            #expect(try await stack.orderStatus(orderId).status == "AWAITING_PAYMENT")  // nobody charged it

            #expect(try await stack.request(.post, "/api/v1/payments/intent", token: bob, json: ["order_id": orderId.uuidString]).status == .notFound)
            let intent = try await stack.request(.post, "/api/v1/payments/intent", token: alice, json: ["order_id": orderId.uuidString])
            #expect(intent.status == .ok)
            #expect(intent.json["amount_cents"] as? Int == 3_000)
            #expect(intent.json["status"] as? String == "requires_confirmation")
            let paymentId = try #require(intent.json["payment_id"] as? String)

            #expect(
                try await stack.request(.post, "/api/v1/payments/confirm", token: bob, json: ["payment_id": paymentId, "payment_method": "tok_visa"]).status
                    == .notFound)
            #expect(
                try await stack.request(
                    .post, "/api/v1/payments/confirm", token: alice, json: ["payment_id": paymentId, "payment_method": "no spaces allowed"]
                ).status == .unprocessableContent)
            let confirmed = try await stack.request(
                .post, "/api/v1/payments/confirm", token: alice, json: ["payment_id": paymentId, "payment_method": "tok_visa"])
            #expect(confirmed.status == .accepted)
            #expect(
                try await stack.request(.post, "/api/v1/payments/confirm", token: alice, json: ["payment_id": paymentId, "payment_method": "tok_visa"]).status
                    == .conflict)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND kind = 'charge'", [orderId]) == 1)
            let history = try await stack.request(.get, "/api/v1/payments/history", token: alice)
            #expect((history.json["items"] as? [[String: Any]])?.first?["status"] as? String == "SUCCEEDED")
        }
    }
}
