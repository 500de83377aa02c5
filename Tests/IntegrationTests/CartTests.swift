import Foundation
import HTTPTypes
import Postgres
import TestSupport
import Testing

@Suite("The cart's additions and quantity changes against real PostgreSQL", .timeLimit(.minutes(5)))
struct CartTests {
    @Test("an addition's rules: a new line, the same product again, the line and stock limits, another currency, a product not on sale")
    func additionRules() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await stack.admin()
            let (_, token) = try await stack.customer()
            let lamp = try await stack.product(admin, stock: 150, priceCents: 1_000)
            func add(_ productId: UUID, _ quantity: Int) async throws -> Stack.HTTPResult {
                try await stack.request(.post, "/api/v1/cart/items", token: token, json: ["product_id": productId.uuidString, "quantity": quantity])
            }
            func lines() async throws -> [[String: Any]] {
                try await stack.request(.get, "/api/v1/cart", token: token).json["items"] as? [[String: Any]] ?? []
            }

            let first = try await add(lamp, 2)
            #expect(first.status == .created)
            #expect(first.json["quantity"] as? Int == 2)
            #expect(first.json["unit_price_cents"] as? Int == 1_000)
            let lineId = try #require(first.json["id"] as? String)
            #expect(first.headers[.location]?.lowercased() == "/api/v1/cart/items/\(lineId.lowercased())")

            // The same product again: the line grows and takes the price of now.
            try await stack.db.query("UPDATE products SET price_cents = 1200 WHERE id = $1", [lamp])
            let again = try await add(lamp, 3)
            #expect(again.status == .created)
            #expect(again.json["id"] as? String == lineId)
            #expect(again.json["quantity"] as? Int == 5)
            #expect(again.json["unit_price_cents"] as? Int == 1_200)

            // 100 a line at most: 5 + 96 is refused and changes nothing; 5 + 95 is taken.
            let overLine = try await add(lamp, 96)
            #expect(overLine.status == .conflict)
            #expect(overLine.body.contains("would hold 101"))
            #expect(try await lines().first?["quantity"] as? Int == 5)
            #expect(try await add(lamp, 95).json["quantity"] as? Int == 100)

            // No more than the stock: 30 in stock, 31 refused, 30 taken.
            let scarce = try await stack.product(admin, stock: 30)
            let overStock = try await add(scarce, 31)
            #expect(overStock.status == .conflict)
            #expect(overStock.body.contains("only 30 in stock"))
            #expect(try await add(scarce, 30).status == .created)
            #expect(try await add(scarce, 1).status == .conflict)

            // One currency a cart.
            let dollars = try await stack.request(
                .post, "/api/v1/products", token: admin,
                json: ["name": "Dollar lamp", "sku": TestEnvironment.uniqueName("USD"), "price_cents": 900, "currency": "USD", "stock": 5])
            let dollarLamp = try #require(uuid(dollars.json["id"]))
            let otherCurrency = try await add(dollarLamp, 1)
            #expect(otherCurrency.status == .conflict)
            #expect(otherCurrency.body.contains("another currency"))

            // Missing, and no longer on sale: 404, nothing added.
            #expect(try await add(UUID(), 1).status == .notFound)
            try await stack.db.query("UPDATE products SET is_active = false WHERE id = $1", [scarce])
            #expect(try await add(scarce, 1).status == .notFound)

            let held = try await lines().map { (uuid($0["product_id"]), $0["quantity"] as? Int ?? 0) }
            #expect(held.count == 2)
            #expect(Dictionary(uniqueKeysWithValues: held) == [lamp: 100, scarce: 30])
        }
    }

    @Test("a quantity change's rules: the price of now, the stock and line limits, another customer's line, a product no longer sold, an expired cart")
    func quantityChangeRules() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await stack.admin()
            let (_, token) = try await stack.customer()
            let (_, otherToken) = try await stack.customer()
            let lamp = try await stack.product(admin, stock: 20, priceCents: 1_000)
            let added = try await stack.request(.post, "/api/v1/cart/items", token: token, json: ["product_id": lamp.uuidString, "quantity": 2])
            let lineId = try #require(added.json["id"] as? String)
            func put(_ quantity: Int, as caller: String? = nil) async throws -> Stack.HTTPResult {
                try await stack.request(.put, "/api/v1/cart/items/\(lineId)", token: caller ?? token, json: ["quantity": quantity])
            }
            func held() async throws -> Int {
                try await stack.count("SELECT coalesce(sum(quantity), 0) FROM cart_items WHERE product_id = $1", [lamp])
            }

            // Set, at the price of now; the answer is the cart after the change.
            try await stack.db.query("UPDATE products SET price_cents = 1500 WHERE id = $1", [lamp])
            let set = try await put(4)
            #expect(set.status == .ok)
            let items = set.json["items"] as? [[String: Any]] ?? []
            #expect(items.count == 1)
            #expect(items.first?["quantity"] as? Int == 4)
            #expect(items.first?["unit_price_cents"] as? Int == 1_500)
            #expect(set.json["total_cents"] as? Int == 6_000)
            #expect(set.json["currency"] as? String == "EUR")

            // No more than the stock, as an addition: 21 refused and nothing changed, 20 taken.
            let overStock = try await put(21)
            #expect(overStock.status == .conflict)
            #expect(overStock.body.contains("only 20 in stock"))
            #expect(try await held() == 4)
            #expect(try await put(20).status == .ok)
            #expect(try await held() == 20)
            // Outside 1...100: a validation problem.
            #expect(try await put(0).status.code == 422)
            #expect(try await put(101).status.code == 422)

            // Another customer's line is not found, and stays as it was.
            #expect(try await put(3, as: otherToken).status == .notFound)
            #expect(try await held() == 20)

            // No longer sold: 409, nothing changed.
            try await stack.db.query("UPDATE products SET is_active = false WHERE id = $1", [lamp])
            let unsold = try await put(3)
            #expect(unsold.status == .conflict)
            #expect(unsold.body.contains("no longer sold"))
            #expect(try await held() == 20)
            try await stack.db.query("UPDATE products SET is_active = true WHERE id = $1", [lamp])

            // An expired cart is emptied on its next use: its line is not found (the refusal
            // rolls back, so the reading after it is what empties the cart).
            try await stack.db.query(
                "UPDATE carts SET updated_at = now() - interval '400 days' WHERE id = (SELECT cart_id FROM cart_items WHERE id = $1)",
                [UUID(uuidString: lineId)!])
            #expect(try await put(3).status == .notFound)
            #expect((try await stack.request(.get, "/api/v1/cart", token: token).json["items"] as? [Any])?.isEmpty == true)
            #expect(try await held() == 0)
        }
    }

    @Test("twelve additions of one product at once, by one customer: the line holds their sum, or the limit and a 409 for each one past it")
    func concurrentAdditions() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await stack.admin()
            let (_, token) = try await stack.customer()
            let roomy = try await stack.product(admin, stock: 1_000)
            let tight = try await stack.product(admin, stock: 40)
            func addAll(_ productId: UUID, _ quantity: Int) async throws -> [HTTPResponse.Status] {
                try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for _ in 0..<12 {
                        group.addTask {
                            try await stack.request(
                                .post, "/api/v1/cart/items", token: token, json: ["product_id": productId.uuidString, "quantity": quantity]
                            ).status
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            func held(_ productId: UUID) async throws -> Int {
                try await stack.count("SELECT coalesce(sum(quantity), 0) FROM cart_items WHERE product_id = $1", [productId])
            }
            // 12 × 7 = 84: every one taken, none lost to another.
            #expect(try await addAll(roomy, 7).allSatisfy { $0 == .created })
            #expect(try await held(roomy) == 84)
            // 12 × 7 against a stock of 40: five taken (35), seven refused, none over.
            let statuses = try await addAll(tight, 7)
            #expect(statuses.filter { $0 == .created }.count == 5)
            #expect(statuses.filter { $0 == .conflict }.count == 7)
            #expect(try await held(tight) == 35)
            #expect(try await stack.count("SELECT count(*) FROM cart_items WHERE product_id = ANY($1)", [[roomy, tight]]) == 2)
        }
    }
}
