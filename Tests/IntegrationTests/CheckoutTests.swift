import AMQP
import API
import Crypto
import Domain
import Foundation
import HTTPTypes
import Messaging
import Postgres
import TestSupport
import Testing

@Suite("Checkout pipeline end to end, against real PostgreSQL and RabbitMQ", .timeLimit(.minutes(10)))
struct CheckoutTests {
    @Test("register, login, admin creates a product, cart, order: CONFIRMED, notified, stock down by the quantity")
    func happyPath() async throws {
        try await Stack.run { stack in
            let (_, productId, (userId, token)) = try await stack.filledCart(stock: 10, priceCents: 1_250, quantity: 3)
            let cart = try await stack.request(.get, "/api/v1/cart", token: token)
            #expect(cart.json["total_cents"] as? Int == 3_750)

            let orderId = try await stack.placeOrder(token)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            #expect(try await stack.stock(productId) == 7)
            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count("SELECT count(*) FROM notifications WHERE order_id = $1 AND template = 'order_confirmed'", [orderId])) == 1
                })
            let notification = try await stack.db.query("SELECT recipient, body, user_id FROM notifications WHERE order_id = $1", [orderId])[0]
            #expect(try notification.decode(String.self, "recipient").hasSuffix("@example.com"))
            #expect(try notification.decode(String.self, "body").contains("is confirmed"))
            #expect(try notification.decode(UUID.self, "user_id") == userId)
            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1 AND status = 'COMMITTED'", [orderId])) == 1
                })

            // The API shows it too, with its history, and the payment in the history.
            let order = try await stack.request(.get, "/api/v1/orders/\(orderId)", token: token)
            #expect(order.status == .ok)
            #expect(order.json["status"] as? String == "CONFIRMED")
            #expect(order.json["total_cents"] as? Int == 3_750)
            let history = (order.json["status_history"] as? [[String: Any]] ?? []).compactMap { $0["to_status"] as? String }
            #expect(history == ["PENDING", "AWAITING_PAYMENT", "CONFIRMED"])
            let payments = try await stack.request(.get, "/api/v1/payments/history", token: token)
            let items = payments.json["items"] as? [[String: Any]] ?? []
            #expect(items.count == 1)
            #expect(items.first?["status"] as? String == "SUCCEEDED")
            #expect((try await stack.request(.get, "/api/v1/cart", token: token)).json["items"] as? [Any] != nil)
            #expect(((try await stack.request(.get, "/api/v1/cart", token: token)).json["items"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("a declined card ends CANCELLED (payment_failed), stock is back, a cancellation is notified")
    func declinedCard() async throws {
        try await Stack.run { stack in
            let (_, productId, _, orderId) = try await stack.purchase(stock: 4, quantity: 2, paymentMethod: "tok_chargeDeclined")
            let final = try await stack.awaitTerminal(orderId)
            #expect(final.status == "CANCELLED")
            #expect(final.reason == "payment_failed")
            #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == 4 })
            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count("SELECT count(*) FROM notifications WHERE order_id = $1 AND template = 'order_cancelled'", [orderId])) == 1
                })
            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1 AND status = 'RELEASED'", [orderId])) == 1
                })
            #expect(try await stack.count("SELECT count(*) FROM payments WHERE order_id = $1 AND status = 'FAILED'", [orderId]) == 1)
        }
    }

    @Test("not enough stock ends CANCELLED (out_of_stock) with no payment attempted")
    func outOfStock() async throws {
        try await Stack.run { stack in
            let (_, productId, (_, token)) = try await stack.filledCart(stock: 5, quantity: 5)
            // Someone else takes stock between cart and checkout.
            try await stack.db.query("UPDATE products SET stock = 2 WHERE id = $1", [productId])
            let orderId = try await stack.placeOrder(token)
            let final = try await stack.awaitTerminal(orderId)
            #expect(final.status == "CANCELLED")
            #expect(final.reason == "out_of_stock")
            #expect(await stack.awaitSettled(orderId), "the order's events were never all consumed")
            #expect(try await stack.count("SELECT count(*) FROM payments WHERE order_id = $1", [orderId]) == 0)
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1", [orderId]) == 0)
            #expect(try await stack.stock(productId) == 2)
        }
    }

    @Test("20 concurrent orders for 5 in stock: exactly 5 CONFIRMED, 15 CANCELLED, stock 0")
    func noOversell() async throws {
        try await Stack.run { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 5)
            var tokens: [String] = []
            for index in 0..<20 {
                let (_, token) = try await stack.customer("rush\(index)-\(UUID().uuidString.prefix(6))")
                try await stack.addToCart(token, productId, quantity: 1)
                tokens.append(token)
            }
            let orderIds = try await withThrowingTaskGroup(of: UUID.self) { group in
                for token in tokens { group.addTask { try await stack.placeOrder(token) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            var finals: [String: Int] = [:]
            for orderId in orderIds {
                let final = try await stack.awaitTerminal(orderId, timeout: .seconds(60))
                finals["\(final.status)/\(final.reason ?? "-")", default: 0] += 1
            }
            #expect(finals["CONFIRMED/-"] == 5)
            #expect(finals["CANCELLED/out_of_stock"] == 15)
            #expect(try await stack.stock(productId) == 0)
            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count("SELECT count(*) FROM stock_reservations WHERE product_id = $1 AND status = 'COMMITTED'", [productId])) == 5
                })
        }
    }

    @Test("Idempotency-Key: required, replayed, refused for another body, 409 in flight, 50 concurrent make one order")
    func idempotency() async throws {
        try await Stack.run { stack in
            let (_, productId, (userId, token)) = try await stack.filledCart(stock: 100)

            let missing = try await stack.request(.post, "/api/v1/orders", token: token, json: Stack.orderBody())
            #expect(missing.status == .badRequest)
            #expect(missing.headers[.contentType] == "application/problem+json")

            let key = HTTPField.Name("Idempotency-Key")!
            let first = try await stack.request(.post, "/api/v1/orders", token: token, json: Stack.orderBody(), headers: [key: "key-1"])
            #expect(first.status == .created)
            let again = try await stack.request(.post, "/api/v1/orders", token: token, json: Stack.orderBody(), headers: [key: "key-1"])
            #expect(again.status == .created)
            #expect(again.body == first.body)
            #expect(again.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            let other = try await stack.request(.post, "/api/v1/orders", token: token, json: Stack.orderBody("tok_mastercard"), headers: [key: "key-1"])
            #expect(other.status == .conflict)
            #expect(other.body.contains("different request body"))
            #expect(try await stack.count("SELECT count(*) FROM orders WHERE user_id = $1", [userId]) == 1)

            // A request still in flight with the key (its claim exists, no response yet) → 409.
            let body = try JSONSerialization.data(withJSONObject: Stack.orderBody(), options: [.sortedKeys])
            let hash = sha256Hex(body)
            try await stack.db.query(
                "INSERT INTO idempotency_keys (user_id, key, request_hash, status, expires_at) VALUES ($1, 'busy', $2, 'IN_FLIGHT', now() + interval '1 day')",
                [userId, hash])
            let busy = try await stack.request(.post, "/api/v1/orders", token: token, json: Stack.orderBody(), headers: [key: "busy"])
            #expect(busy.status == .conflict)

            // 50 concurrent requests with one key create exactly one order.
            try await stack.addToCart(token, productId, quantity: 1)
            let statuses = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let response = try await stack.request(.post, "/api/v1/orders", token: token, json: Stack.orderBody(), headers: [key: "key-50"])
                        return (response.status.code, response.body)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0.0 == 201 || $0.0 == 409 })
            let created = statuses.filter { $0.0 == 201 }
            #expect(!created.isEmpty)
            #expect(Set(created.map(\.1)).count == 1)  // every 201 is the same order
            #expect(try await stack.count("SELECT count(*) FROM orders WHERE user_id = $1", [userId]) == 2)
        }
    }

    @Test("every worker, fed the same events twice (same message ids), applies them once")
    func duplicatesApplyOnce() async throws {
        try await Stack.apiOnly { stack in
            // Each role runs on its own, so the test can stop them gracefully (in-flight
            // deliveries finish and are acked, the rest go back to the queue) and then know
            // that an empty queue means every duplicate was handled.
            let roles = try WorkerRole.allCases.map { try stack.startRole($0) }
            let (_, productId, _, orderId) = try await stack.purchase(stock: 10, quantity: 2)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            #expect(await TestEnvironment.eventually { (try? await stack.count("SELECT count(*) FROM notifications WHERE order_id = $1", [orderId])) == 1 })
            let snapshot = try await effects(stack, orderId, productId)

            // Deliver every event of this order again, with the same ids, to every queue.
            let rows = try await stack.db.query("SELECT payload::text AS body FROM outbox WHERE order_id = $1 ORDER BY created_at", [orderId])
            #expect(rows.count == 5)  // placed, reserved, payment requested, succeeded, confirmed
            let publisher = AMQPPublisher(configuration: stack.amqp)
            let messages = try rows.map { row -> AMQPOutgoingMessage in
                let body = Array(try row.decode(String.self, "body").utf8)
                return OutboxStore.message(for: try EventEnvelope.decode(body), body: body, exchange: stack.names.eventsExchange)
            }
            #expect(try await publisher.publish(messages).allSatisfy { $0 == .confirmed })
            await publisher.close()
            let inbox = try await stack.count("SELECT count(*) FROM inbox")
            // All duplicates taken from the queues and, once the workers stopped gracefully,
            // none handed back: every one was handled and acked. Then nothing changed.
            let admin2 = try await AMQPConnection.connect(configuration: stack.amqp)
            func queuesEmpty() async -> Bool {
                for role in WorkerRole.allCases where (try? await admin2.queueStatus(stack.names.queue(role)).messages) != 0 { return false }
                return true
            }
            #expect(await TestEnvironment.eventually { await queuesEmpty() })
            for role in roles { await role.stop() }
            #expect(await queuesEmpty(), "a duplicate was still unhandled when the workers stopped")
            await admin2.close()
            #expect(try await effects(stack, orderId, productId) == snapshot)
            #expect(try await stack.count("SELECT count(*) FROM inbox") == inbox)
        }
    }

    /// Every side effect of an order, to compare before and after duplicates.
    private func effects(_ stack: Stack, _ orderId: UUID, _ productId: UUID) async throws -> [Int] {
        [
            try await stack.stock(productId),
            try await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1", [orderId]),
            try await stack.count("SELECT count(*) FROM payments WHERE order_id = $1", [orderId]),
            try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1", [orderId]),
            try await stack.count("SELECT count(*) FROM order_status_history WHERE order_id = $1", [orderId]),
            try await stack.count("SELECT count(*) FROM notifications WHERE order_id = $1", [orderId]),
            try await stack.count("SELECT count(*) FROM outbox WHERE order_id = $1", [orderId]),
        ]
    }

    @Test("an outbox row left unpublished (publish after commit failed) is published by the relay")
    func relayPublishesLeftovers() async throws {
        var options = Stack.Options()
        options.apiBrokerUnreachable = true
        options.inProcessWorkers = false
        try await Stack.run(options) { stack in
            let (_, _, (_, token)) = try await stack.filledCart(stock: 3)
            // The API commits the order but cannot reach the broker: its row stays unpublished
            // (and no other process is running yet).
            let orderId = try await stack.placeOrder(token)
            try await Task.sleep(for: .seconds(1))
            #expect(
                try await stack.count("SELECT count(*) FROM outbox WHERE order_id = $1 AND event_type = 'order.placed' AND published_at IS NULL", [orderId])
                    == 1)
            #expect(try await stack.orderStatus(orderId).status == "PENDING")
            // Workers start; their outbox relays publish the leftover row and the saga runs.
            let workers = try Stack.makeWorkers(database: stack.database, names: stack.names, amqp: stack.amqp, forceEnabled: true)
            let running = Task { try await workers.run() }
            let final = try await stack.awaitTerminal(orderId)
            await workers.triggerGracefulShutdown()
            _ = await running.result
            #expect(final.status == "CONFIRMED")
            #expect(try await stack.count("SELECT count(*) FROM outbox WHERE order_id = $1 AND published_at IS NULL", [orderId]) == 0)
        }
    }

    @Test("access control: others' orders and cart items are 404, bad tokens 401, customers cannot create products")
    func accessControl() async throws {
        try await Stack.run { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10)
            let (_, alice) = try await stack.customer()
            let (_, bob) = try await stack.customer()
            try await stack.addToCart(alice, productId, quantity: 1)
            let aliceItem = try #require(
                ((try await stack.request(.get, "/api/v1/cart", token: alice)).json["items"] as? [[String: Any]])?.first?["id"] as? String)
            let orderId = try await stack.placeOrder(alice)

            #expect(try await stack.request(.get, "/api/v1/orders/\(orderId)", token: bob).status == .notFound)
            #expect(try await stack.request(.get, "/api/v1/orders/\(orderId)", token: admin).status == .ok)
            #expect(try await stack.request(.get, "/api/v1/orders/\(orderId)", token: alice).status == .ok)
            let bobsOrders = try await stack.request(.get, "/api/v1/orders", token: bob)
            #expect((bobsOrders.json["items"] as? [Any])?.isEmpty == true)

            try await stack.addToCart(alice, productId, quantity: 1)
            let item = try #require(((try await stack.request(.get, "/api/v1/cart", token: alice)).json["items"] as? [[String: Any]])?.first?["id"] as? String)
            #expect(item != aliceItem)
            #expect(try await stack.request(.put, "/api/v1/cart/items/\(item)", token: bob, json: ["quantity": 5]).status == .notFound)
            #expect(try await stack.request(.delete, "/api/v1/cart/items/\(item)", token: bob).status == .notFound)
            #expect(try await stack.request(.put, "/api/v1/cart/items/\(item)", token: alice, json: ["quantity": 2]).status == .ok)

            #expect(try await stack.request(.get, "/api/v1/orders").status == .unauthorized)
            #expect(try await stack.request(.get, "/api/v1/orders", token: "not-a-jwt").status == .unauthorized)
            let forged = alice.dropLast(3) + (alice.hasSuffix("AAA") ? "BBB" : "AAA")
            #expect(try await stack.request(.get, "/api/v1/orders", token: String(forged)).status == .unauthorized)
            let otherKey = await TokenService(secret: "a-different-secret-that-is-long-enough")
            let foreign = try await otherKey.accessToken(userId: UUID(), role: .admin)
            #expect(try await stack.request(.get, "/api/v1/orders", token: foreign).status == .unauthorized)
            let realKey = await TokenService(secret: Stack.jwtSecret)
            let expired = try await realKey.accessToken(userId: UUID(), role: .customer, now: Date().addingTimeInterval(-3_600))
            let expiredResponse = try await stack.request(.get, "/api/v1/orders", token: expired)
            #expect(expiredResponse.status == .unauthorized)
            #expect(expiredResponse.headers[.contentType] == "application/problem+json")

            let forbidden = try await stack.request(
                .post, "/api/v1/products", token: alice,
                json: [
                    "name": "Nope", "sku": "NOPE-1", "price_cents": 1, "currency": "EUR", "stock": 1,
                ])
            #expect(forbidden.status == .forbidden)
        }
    }

    @Test("bad input gets a problem body naming the fields, and loses nothing")
    func validation() async throws {
        try await Stack.run { stack in
            let admin = try await stack.admin()
            let invalid = try await stack.request(
                .post, "/api/v1/products", token: admin,
                json: [
                    "name": "", "sku": "has space", "price_cents": -1, "currency": "euro", "stock": -5,
                ])
            #expect(invalid.status == .unprocessableContent)
            let fields = Set((invalid.json["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String })
            #expect(fields == ["name", "sku", "price_cents", "currency", "stock"])
            let malformed = try await stack.request(.post, "/api/v1/auth/register", json: ["email": "x@example.com"])
            #expect(malformed.status == .badRequest)
            #expect(malformed.body.contains("password"))
            let weak = try await stack.request(
                .post, "/api/v1/auth/register", json: ["email": "nope", "password": "short", "first_name": "A", "last_name": "B"])
            #expect(weak.status == .unprocessableContent)
            let (_, token) = try await stack.customer()
            // An empty cart is a state the request conflicts with, not a malformed request.
            let empty = try await stack.request(
                .post, "/api/v1/orders", token: token, json: Stack.orderBody(), headers: [HTTPField.Name("Idempotency-Key")!: "empty"])
            #expect(empty.status == .conflict)
            #expect(try await stack.request(.get, "/api/v1/products?page_size=1000").status == .badRequest)
            let huge = String(repeating: "x", count: 70_000)
            #expect(try await stack.request(.post, "/api/v1/auth/login", json: ["email": huge, "password": huge]).status == .contentTooLarge)
        }
    }
}

func sha256Hex(_ data: Data) -> String {
    SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
}
