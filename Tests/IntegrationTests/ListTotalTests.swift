import Foundation
import Store
import TestSupport
import Testing

/// Every paged list says how many items it has in all, on any page: past the last page too,
/// where a client that pages by the total would otherwise be told the list is empty.
@Suite("List totals", .timeLimit(.minutes(10)))
struct ListTotalTests {
    @Test("every API list, the console's lists and the storefront's search give the same total on page 1 and past the last page")
    func totalsPastTheLastPage() async throws {
        try await Stack.run { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10)
            // An endpoint that refuses every attempt: each order event still leaves a delivery row.
            let endpoint = try await stack.request(
                .post, "/api/v1/webhook-endpoints", token: admin, json: ["url": "http://127.0.0.1:9/hook", "event_types": ["order.*"]])
            try #require(endpoint.status == .created, "\(endpoint.body)")
            let endpointId = try #require(uuid(endpoint.json["id"]))
            let (_, alice) = try await stack.customer()
            var orders: [UUID] = []
            for _ in 0..<3 {
                try await stack.addToCart(alice, productId, quantity: 1)
                orders.append(try await stack.placeOrder(alice))
            }
            for order in orders { #expect(try await stack.awaitTerminal(order).status == "CONFIRMED") }
            for status in ["SHIPPED", "DELIVERED"] {
                #expect(try await stack.request(.put, "/api/v1/orders/\(orders[0])/status", token: admin, json: ["status": status]).status == .ok)
            }
            #expect(try await stack.request(.post, "/api/v1/products/\(productId)/reviews", token: alice, json: ["rating": 5]).status == .created)
            for order in orders { #expect(await stack.awaitSettled(order), "order \(order) settled") }
            // (path, token, the total the database says it must be)
            let lists: [(String, String, Int)] = [
                ("/api/v1/orders", alice, 3),
                ("/api/v1/orders", admin, try await stack.count("SELECT count(*) FROM orders")),
                ("/api/v1/payments/history", alice, 3),
                ("/api/v1/products", alice, try await stack.count("SELECT count(*) FROM products WHERE is_active")),
                ("/api/v1/products/\(productId)/reviews", alice, 1),
                ("/api/v1/users", admin, try await stack.count("SELECT count(*) FROM users WHERE closed_at IS NULL")),
                ("/api/v1/webhook-endpoints", admin, try await stack.count("SELECT count(*) FROM webhook_endpoints")),
                (
                    "/api/v1/webhook-endpoints/\(endpointId)/deliveries", admin,
                    try await stack.count("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", [endpointId])
                ),
            ]
            for (path, token, expected) in lists {
                try #require(expected >= 1, "\(path): nothing to list")
                for page in [1, expected, expected + 1, 1_000] {
                    let answer = try await stack.request(.get, "\(path)?page=\(page)&page_size=1", token: token)
                    try #require(answer.status == .ok, "\(path) page \(page): \(answer.status) \(answer.body)")
                    let items = (answer.json["items"] as? [[String: Any]])?.count
                    #expect(answer.json["total"] as? Int == expected, "\(path) page \(page): \(answer.body)")
                    #expect(items == (page <= expected ? 1 : 0), "\(path) page \(page)")
                }
            }

            // The same for the lists the console and the storefront render.
            let users = try await stack.count("SELECT count(*) FROM users WHERE closed_at IS NULL")
            let products = try await stack.count("SELECT count(*) FROM products")
            let active = try await stack.count("SELECT count(*) FROM products WHERE is_active")
            for offset in [0, 1_000] {
                let found = try await ConsoleQueries().users(text: nil, size: 1, offset: offset, on: stack.db)
                #expect(found.total == users && found.users.count == (offset == 0 ? 1 : 0), "console users at \(offset)")
                let listed = try await ConsoleQueries().products(sellerId: nil, text: nil, size: 1, offset: offset, on: stack.db)
                #expect(listed.total == products && listed.products.count == (offset == 0 ? 1 : 0), "console products at \(offset)")
                let searched = try await CatalogStore().search(
                    CatalogStore.Search(text: nil, minPrice: nil, maxPrice: nil, inStock: nil, category: nil, sort: "newest"), size: 1, offset: offset,
                    on: stack.db)
                #expect(searched.total == active && searched.products.count == (offset == 0 ? 1 : 0), "storefront search at \(offset)")
            }
        }
    }
}
