import Domain
import Foundation
import HTTPTypes
import Operations
import TestSupport
import Testing

/// Every route that touches something with an owner, tried by someone else.
@Suite("Object-level authorization over every owned resource", .timeLimit(.minutes(10)))
struct OwnershipTests {
    struct Probe: CustomStringConvertible {
        let method: HTTPRequest.Method
        let path: String
        let body: [String: Any]?
        var description: String { "\(method) \(path)" }
    }

    @Test("another user gets 404 or 403 on every owned resource, and the resource is unchanged")
    func everyOwnedRoute() async throws {
        try await Stack.run { stack in
            let admin = try await stack.admin()
            let (_, alice) = try await stack.customer()
            let (_, mallory) = try await stack.customer()
            let sellerEmail = "\(TestEnvironment.uniqueName("seller"))@example.com"
            let otherSellerEmail = "\(TestEnvironment.uniqueName("seller"))@example.com"
            let accounts = Accounts(pool: stack.db, bcryptCost: 4)
            try await accounts.createUser(email: sellerEmail, password: "seller password", role: .seller, firstName: "S", lastName: "One")
            try await accounts.createUser(email: otherSellerEmail, password: "seller password", role: .seller, firstName: "S", lastName: "Two")
            let seller = try await stack.login(sellerEmail, "seller password")
            let otherSeller = try await stack.login(otherSellerEmail, "seller password")

            // Alice's things: an order (paid), a cart item, an address; the seller's product.
            let productId = try await stack.product(admin, stock: 10)
            try await stack.addToCart(alice, productId, quantity: 1)
            let orderId = try await stack.placeOrder(alice)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            try await stack.addToCart(alice, productId, quantity: 2)
            let cartItem = try #require(
                ((try await stack.request(.get, "/api/v1/cart", token: alice)).json["items"] as? [[String: Any]])?.first?["id"] as? String)
            let address = try #require(
                try await stack.request(
                    .post, "/api/v1/users/me/addresses", token: alice,
                    json: [
                        "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE",
                    ]
                ).json["id"] as? String)
            let sellersProduct = try await stack.product(seller, stock: 4)
            let productBody: [String: Any] = ["name": "Hijacked", "sku": "HIJACK-1", "price_cents": 1, "currency": "EUR", "stock": 0, "version": 1]

            let probes: [(token: String, probe: Probe)] = [
                (mallory, Probe(method: .get, path: "/api/v1/orders/\(orderId)", body: nil)),
                (mallory, Probe(method: .post, path: "/api/v1/orders/\(orderId)/cancel", body: nil)),
                (mallory, Probe(method: .put, path: "/api/v1/orders/\(orderId)/status", body: ["status": "SHIPPED"])),
                (mallory, Probe(method: .put, path: "/api/v1/cart/items/\(cartItem)", body: ["quantity": 50])),
                (mallory, Probe(method: .delete, path: "/api/v1/cart/items/\(cartItem)", body: nil)),
                (
                    mallory,
                    Probe(method: .put, path: "/api/v1/users/me/addresses/\(address)", body: ["line1": "x", "city": "y", "postal_code": "1", "country": "FR"])
                ),
                (mallory, Probe(method: .delete, path: "/api/v1/users/me/addresses/\(address)", body: nil)),
                (otherSeller, Probe(method: .put, path: "/api/v1/products/\(sellersProduct)", body: productBody)),
                (mallory, Probe(method: .put, path: "/api/v1/products/\(sellersProduct)", body: productBody)),
                (
                    mallory,
                    Probe(
                        method: .get,
                        path: "/api/v1/users/\(try #require(uuid((try await stack.request(.get, "/api/v1/users/me", token: alice)).json["id"]))))", body: nil)
                ),
            ]
            for (token, probe) in probes {
                let response = try await stack.request(probe.method, probe.path, token: token, json: probe.body)
                #expect(response.status == .notFound || response.status == .forbidden, "\(probe) answered \(response.status)")
            }
            // Lists show only the caller's own things.
            for path in ["/api/v1/orders", "/api/v1/payments/history", "/api/v1/users/me/addresses", "/api/v1/cart"] {
                let body = try await stack.request(.get, path, token: mallory).body
                #expect(!body.lowercased().contains(orderId.uuidString.lowercased()) && !body.contains(orderId.uuidString), "\(path) leaks Alice's order")
                #expect(!body.lowercased().contains(address.lowercased()), "\(path) leaks Alice's address")
            }
            // Nothing changed.
            #expect(try await stack.orderStatus(orderId).status == "CONFIRMED")
            #expect(((try await stack.request(.get, "/api/v1/cart", token: alice)).json["items"] as? [[String: Any]])?.first?["quantity"] as? Int == 2)
            #expect(((try await stack.request(.get, "/api/v1/users/me/addresses", token: alice)).json["items"] as? [Any])?.count == 1)
            #expect(try await stack.request(.get, "/api/v1/products/\(sellersProduct)").json["name"] as? String == "Widget")
            // The owning seller can change their own product.
            var own = productBody
            own["name"] = "Renamed by owner"
            own["sku"] = "OWN-\(UUID().uuidString.prefix(6))"
            #expect(try await stack.request(.put, "/api/v1/products/\(sellersProduct)", token: seller, json: own).status == .ok)
        }
    }
}
