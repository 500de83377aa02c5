import Foundation
import HTTPTypes
import TestSupport
import Testing

@Suite("Reviews", .timeLimit(.minutes(10)))
struct ReviewTests {
    @Test("a review is refused before delivery and accepted after; a second one is refused; ratings out of range are refused")
    func reviewAfterDelivery() async throws {
        try await Stack.run { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10)
            let (_, alice) = try await stack.customer()
            let (_, bob) = try await stack.customer()
            try await stack.addToCart(alice, productId, quantity: 1)
            let orderId = try await stack.placeOrder(alice)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            let path = "/api/v1/products/\(productId)/reviews"
            #expect(try await stack.request(.post, path, token: alice, json: ["rating": 5, "body": "Great"]).status == .forbidden)
            for status in ["SHIPPED", "DELIVERED"] {
                #expect(try await stack.request(.put, "/api/v1/orders/\(orderId)/status", token: admin, json: ["status": status]).status == .ok)
            }
            #expect(try await stack.request(.post, path, token: alice, json: ["rating": 6]).status == .unprocessableContent)
            #expect(try await stack.request(.post, path, token: alice, json: ["rating": 0]).status == .unprocessableContent)
            let created = try await stack.request(.post, path, token: alice, json: ["rating": 4, "body": "Solid"])
            #expect(created.status == .created)
            #expect(try await stack.request(.post, path, token: alice, json: ["rating": 1]).status == .conflict)
            #expect(try await stack.request(.post, path, token: bob, json: ["rating": 1]).status == .forbidden)  // never bought it
            let list = try await stack.request(.get, path)
            #expect((list.json["items"] as? [[String: Any]])?.count == 1)
            let product = try await stack.request(.get, "/api/v1/products/\(productId)").json
            #expect(product["rating_count"] as? Int == 1)
            #expect(product["rating_average"] as? Double == 4.0)
        }
    }
}
