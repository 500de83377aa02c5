import API
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Operations
import TestSupport

/// One documented operation with a request body, and how to call it validly: the contract
/// test varies one field of ``body`` at a time.
struct ContractOperation: @unchecked Sendable {
    let method: HTTPRequest.Method
    /// The document's path, e.g. `/api/v1/products/{id}`.
    let template: String
    /// The concrete path to call.
    let path: String
    let token: String?
    /// A fresh valid body (unique emails, SKUs and slugs each time).
    let body: () async throws -> SampleBody
    /// Real values for reference fields (ids that exist), by field path.
    var known: [String: [Sample]] = [:]
    /// Runs before each call (e.g. puts a product in the cart an order is placed from).
    var prepare: (() async throws -> Void)?
    /// Headers every call needs (a fresh `Idempotency-Key`).
    var headers: () -> [String: String] = { [:] }

    var label: String { "\(method.rawValue) \(template)" }

    func send(_ stack: Stack, _ json: String, extraHeaders: [String: String]) async throws -> ContractResult {
        try await prepare?()
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        if let token { fields[.authorization] = "Bearer \(token)" }
        for (name, value) in headers().merging(extraHeaders, uniquingKeysWith: { $1 }) { fields[HTTPField.Name(name)!] = value }
        return try await stack.client.execute(uri: path, method: method, headers: fields, body: ByteBuffer(string: json)) { response in
            ContractResult(status: response.status, body: String(buffer: response.body))
        }
    }
}

/// The accounts, catalog, cart, order and payment the contract test's calls refer to, made
/// through the API (and the workers, for a manual order awaiting payment).
struct ContractFixture {
    var operations: [ContractOperation] = []
    /// Listing endpoints with query parameters: (document path, concrete path, token).
    var listings: [(String, String, String?)] = []

    static func make(_ stack: Stack) async throws -> ContractFixture {
        let superadminEmail = "\(TestEnvironment.uniqueName("root"))@example.com"
        _ = try await Accounts(pool: stack.db, bcryptCost: 4).createUser(
            email: superadminEmail, password: "root password", role: .superadmin, firstName: "Root", lastName: "Admin")
        let root = try await stack.login(superadminEmail, "root password")
        let (_, customer) = try await stack.customer()
        let (targetId, _) = try await stack.customer()

        let parent = try await stack.request(
            .post, "/api/v1/categories", token: root, json: ["name": "Parent", "slug": TestEnvironment.uniqueName("p").lowercased()])
        let parentId = try idOrFail(uuid(parent.json["id"]), parent)
        let category = try await stack.request(
            .post, "/api/v1/categories", token: root, json: ["name": "Child", "slug": TestEnvironment.uniqueName("c").lowercased()])
        let categoryId = try idOrFail(uuid(category.json["id"]), category)
        let productId = try await stack.product(root, stock: 1_000_000)
        // The product the PUT calls rewrite (its stock and price change with every call).
        let editedId = try await stack.product(root, stock: 10)
        let address = try await stack.request(
            .post, "/api/v1/users/me/addresses", token: customer, json: ["line1": "1 Main Street", "city": "Berlin", "postal_code": "10115", "country": "DE"])
        let addressId = try idOrFail(uuid(address.json["id"]), address)
        // A manual order the stock and order workers move to AWAITING_PAYMENT, and its payment
        // intent. The workers stop then: the calls that follow only need the API, and the
        // orders they place wait in the queues.
        try await stack.addToCart(customer, productId, quantity: 1)
        let workers = try [WorkerRole.stock, .order].map { try stack.startRole($0) }
        let orderId = try await stack.placeOrder(customer, paymentMethod: "manual")
        let awaiting = await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.orderStatus(orderId).status) == "AWAITING_PAYMENT" }
        for worker in workers { await worker.stop() }
        guard awaiting else { throw TestFailure("the manual order \(orderId) never reached AWAITING_PAYMENT") }
        let intent = try await stack.request(.post, "/api/v1/payments/intent", token: customer, json: ["order_id": orderId.uuidString])
        let paymentId = try idOrFail(uuid(intent.json["payment_id"]), intent)

        // The cart line the PUT calls change (after the manual order, which emptied the cart).
        try await stack.addToCart(customer, productId, quantity: 1)
        let cart = try await stack.request(.get, "/api/v1/cart", token: customer)
        let itemId = try idOrFail(uuid((cart.json["items"] as? [[String: Any]])?.first?["id"]), cart)

        let name: () -> SampleBody = {
            var body = SampleBody()
            body["first_name"] = .string("Ada")
            body["last_name"] = .string("Lovelace")
            return body
        }
        let addressBody: (String) -> SampleBody = { prefix in
            var body = SampleBody()
            body[prefix + "line1"] = .string("1 Main Street")
            body[prefix + "city"] = .string("Berlin")
            body[prefix + "postal_code"] = .string("10115")
            body[prefix + "country"] = .string("DE")
            return body
        }
        let productBody: () -> SampleBody = {
            var body = SampleBody()
            body["name"] = .string("Widget")
            body["description"] = .string("A widget")
            body["sku"] = .string(TestEnvironment.uniqueName("SKU"))
            body["price_cents"] = .int(1_000)
            body["currency"] = .string("EUR")
            body["stock"] = .int(10)
            body["images"] = .array([.string("https://cdn.example.com/w.png")])
            body["category_ids"] = .array([.string(categoryId.uuidString)])
            return body
        }
        let ids: ([UUID]) -> [Sample] = { $0.map { .string($0.uuidString) } }

        var fixture = ContractFixture()
        fixture.operations = [
            ContractOperation(method: .post, template: "/api/v1/auth/register", path: "/api/v1/auth/register", token: nil) {
                var body = name()
                body["email"] = .string("\(TestEnvironment.uniqueName("new"))@example.com")
                body["password"] = .string("correct horse battery")
                return body
            },
            ContractOperation(method: .post, template: "/api/v1/auth/login", path: "/api/v1/auth/login", token: nil) {
                // Unknown accounts: 401 each time, never throttled into a 429 for one account.
                var body = SampleBody()
                body["email"] = .string("\(TestEnvironment.uniqueName("nobody"))@example.com")
                body["password"] = .string("whatever it is")
                return body
            },
            ContractOperation(method: .post, template: "/api/v1/auth/refresh", path: "/api/v1/auth/refresh", token: nil) {
                var body = SampleBody()
                body["refresh_token"] = .string("not-a-refresh-token")
                return body
            },
            ContractOperation(method: .post, template: "/api/v1/auth/logout", path: "/api/v1/auth/logout", token: nil) {
                var body = SampleBody()
                body["refresh_token"] = .string("not-a-refresh-token")
                return body
            },
            ContractOperation(method: .put, template: "/api/v1/users/me", path: "/api/v1/users/me", token: customer) { name() },
            ContractOperation(method: .post, template: "/api/v1/users/me/addresses", path: "/api/v1/users/me/addresses", token: customer) { addressBody("") },
            ContractOperation(method: .put, template: "/api/v1/users/me/addresses/{id}", path: "/api/v1/users/me/addresses/\(addressId)", token: customer) {
                addressBody("")
            },
            ContractOperation(method: .put, template: "/api/v1/users/{id}", path: "/api/v1/users/\(targetId)", token: root) { name() },
            ContractOperation(
                method: .post, template: "/api/v1/categories", path: "/api/v1/categories", token: root,
                body: {
                    var body = SampleBody()
                    body["name"] = .string("Category")
                    body["slug"] = .string(TestEnvironment.uniqueName("cat").lowercased())
                    return body
                }, known: ["parent_id": ids([parentId])]),
            ContractOperation(
                method: .put, template: "/api/v1/categories/{id}", path: "/api/v1/categories/\(categoryId)", token: root,
                body: {
                    var body = SampleBody()
                    body["name"] = .string("Child")
                    body["slug"] = .string(TestEnvironment.uniqueName("c").lowercased())
                    return body
                }, known: ["parent_id": ids([parentId])]),
            ContractOperation(
                method: .post, template: "/api/v1/products", path: "/api/v1/products", token: root, body: productBody,
                known: ["category_ids": ids([categoryId])]),
            ContractOperation(
                method: .put, template: "/api/v1/products/{id}", path: "/api/v1/products/\(editedId)", token: root,
                body: {
                    let current = try await stack.request(.get, "/api/v1/products/\(editedId)", token: root)
                    var body = productBody()
                    body["version"] = .int(current.json["version"] as? Int ?? 1)
                    return body
                }, known: ["category_ids": ids([categoryId])]),
            ContractOperation(method: .post, template: "/api/v1/products/{id}/reviews", path: "/api/v1/products/\(productId)/reviews", token: customer) {
                var body = SampleBody()
                body["rating"] = .int(5)
                body["body"] = .string("Good")
                return body
            },
            ContractOperation(
                method: .post, template: "/api/v1/cart/items", path: "/api/v1/cart/items", token: customer,
                body: {
                    var body = SampleBody()
                    body["product_id"] = .string(productId.uuidString)
                    body["quantity"] = .int(1)
                    return body
                }, known: ["product_id": ids([productId])]),
            ContractOperation(method: .put, template: "/api/v1/cart/items/{id}", path: "/api/v1/cart/items/\(itemId)", token: customer) {
                var body = SampleBody()
                body["quantity"] = .int(1)
                return body
            },
            ContractOperation(
                method: .post, template: "/api/v1/orders", path: "/api/v1/orders", token: customer,
                body: {
                    var body = addressBody("shipping_address.")
                    body["payment_method"] = .string("tok_visa")
                    return body
                },
                // Each accepted order empties the cart; refill it so the next is judged on its body.
                prepare: {
                    _ = try await stack.request(.put, "/api/v1/cart/items/\(itemId)", token: customer, json: ["quantity": 1])
                    let cart = try await stack.request(.get, "/api/v1/cart", token: customer)
                    if (cart.json["items"] as? [[String: Any]])?.isEmpty != false { try await stack.addToCart(customer, productId, quantity: 1) }
                },
                headers: { ["Idempotency-Key": UUID().uuidString] }),
            ContractOperation(method: .put, template: "/api/v1/orders/{id}/status", path: "/api/v1/orders/\(orderId)/status", token: root) {
                var body = SampleBody()
                body["status"] = .string("SHIPPED")
                return body
            },
            ContractOperation(
                method: .post, template: "/api/v1/payments/intent", path: "/api/v1/payments/intent", token: customer,
                body: {
                    var body = SampleBody()
                    body["order_id"] = .string(orderId.uuidString)
                    return body
                }, known: ["order_id": ids([orderId])]),
            ContractOperation(
                method: .post, template: "/api/v1/payments/confirm", path: "/api/v1/payments/confirm", token: customer,
                body: {
                    var body = SampleBody()
                    body["payment_id"] = .string(paymentId.uuidString)
                    body["payment_method"] = .string("tok_visa")
                    return body
                }, known: ["payment_id": ids([paymentId])]),
        ]
        fixture.listings = [
            ("/api/v1/users", "/api/v1/users", root),
            ("/api/v1/products", "/api/v1/products", nil),
            ("/api/v1/products/{id}/reviews", "/api/v1/products/\(productId)/reviews", nil),
            ("/api/v1/orders", "/api/v1/orders", customer),
            ("/api/v1/payments/history", "/api/v1/payments/history", customer),
        ]
        return fixture
    }

    private static func idOrFail(_ id: UUID?, _ result: Stack.HTTPResult) throws -> UUID {
        guard let id else { throw TestFailure("fixture setup failed: \(result.status) \(result.body)") }
        return id
    }
}
