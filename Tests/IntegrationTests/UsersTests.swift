import Domain
import Foundation
import HTTPTypes
import Operations
import TestSupport
import Testing

@Suite("Users, addresses, roles and sign-in protection", .timeLimit(.minutes(10)))
struct UsersTests {
    private func account(_ stack: Stack, role: Role) async throws -> (UUID, String) {
        let email = "\(TestEnvironment.uniqueName(role.rawValue.lowercased()))@example.com"
        let id = try await Accounts(pool: stack.db, bcryptCost: 4).createUser(
            email: email, password: "a fine password", role: role, firstName: "R", lastName: "Ole")
        return (id, try await stack.login(email, "a fine password"))
    }

    @Test("profile: read and change names; role and email in the body are ignored (server values win)")
    func profile() async throws {
        try await Stack.apiOnly { stack in
            let (userId, token) = try await stack.customer()
            let changed = try await stack.request(
                .put, "/api/v1/users/me", token: token, json: ["first_name": "Neo", "last_name": "Anderson", "role": "SUPERADMIN", "email": "x@evil.example"])
            #expect(changed.status == .ok)
            #expect(changed.json["first_name"] as? String == "Neo")
            #expect(changed.json["role"] as? String == "CUSTOMER")
            #expect((changed.json["email"] as? String)?.hasSuffix("@example.com") == true)
            #expect(try await stack.request(.get, "/api/v1/users/me", token: token).json["id"] as? String == userId.uuidString)
            // Registration ignores a role too.
            let registered = try await stack.request(
                .post, "/api/v1/auth/register",
                json: [
                    "email": "\(TestEnvironment.uniqueName("r"))@example.com", "password": "a fine password", "first_name": "A", "last_name": "B",
                    "role": "ADMIN",
                ])
            #expect(registered.json["role"] as? String == "CUSTOMER")
            // Order placement ignores client totals and statuses.
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 5, priceCents: 700)
            try await stack.addToCart(token, productId, quantity: 2)
            var body = Stack.orderBody()
            body["status"] = "CONFIRMED"
            body["total_cents"] = 1
            body["price_cents"] = 1
            let placed = try await stack.request(.post, "/api/v1/orders", token: token, json: body, headers: [HTTPField.Name("Idempotency-Key")!: "mass"])
            #expect(placed.json["status"] as? String == "PENDING")
            #expect(placed.json["total_cents"] as? Int == 1_400)
        }
    }

    @Test("addresses are the caller's own: CRUD works, another user's address is 404")
    func addresses() async throws {
        try await Stack.apiOnly { stack in
            let (_, alice) = try await stack.customer()
            let (_, bob) = try await stack.customer()
            let address: [String: Any] = ["line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE", "is_default": true]
            let created = try await stack.request(.post, "/api/v1/users/me/addresses", token: alice, json: address)
            #expect(created.status == .created)
            let id = try #require(created.json["id"] as? String)
            #expect(try await stack.request(.put, "/api/v1/users/me/addresses/\(id)", token: bob, json: address).status == .notFound)
            #expect(try await stack.request(.delete, "/api/v1/users/me/addresses/\(id)", token: bob).status == .notFound)
            #expect(((try await stack.request(.get, "/api/v1/users/me/addresses", token: bob)).json["items"] as? [Any])?.isEmpty == true)
            var moved = address
            moved["city"] = "Hamburg"
            #expect(try await stack.request(.put, "/api/v1/users/me/addresses/\(id)", token: alice, json: moved).json["city"] as? String == "Hamburg")
            var bad = address
            bad["country"] = "Germany"
            #expect(try await stack.request(.post, "/api/v1/users/me/addresses", token: alice, json: bad).status == .unprocessableContent)
            #expect(try await stack.request(.delete, "/api/v1/users/me/addresses/\(id)", token: alice).status == .noContent)
        }
    }

    @Test("user administration: ADMIN manages customers, only SUPERADMIN changes roles or other admins")
    func administration() async throws {
        try await Stack.apiOnly { stack in
            let customerName = TestEnvironment.uniqueName("closing")
            let (customerId, customer) = try await stack.customer(customerName)
            let (adminId, admin) = try await account(stack, role: .admin)
            let (_, superadmin) = try await account(stack, role: .superadmin)
            #expect(try await stack.request(.get, "/api/v1/users", token: customer).status == .forbidden)
            #expect(try await stack.request(.get, "/api/v1/users/\(adminId)", token: customer).status == .forbidden)
            #expect(try await stack.request(.get, "/api/v1/users", token: admin).status == .ok)
            #expect(try await stack.request(.put, "/api/v1/users/\(customerId)", token: admin, json: ["role": "ADMIN"]).status == .forbidden)
            #expect(try await stack.request(.put, "/api/v1/users/\(adminId)", token: admin, json: ["role": "SUPERADMIN"]).status == .forbidden)
            #expect(
                try await stack.request(.put, "/api/v1/users/\(customerId)", token: admin, json: ["first_name": "Renamed"]).json["first_name"] as? String
                    == "Renamed")
            #expect(
                try await stack.request(.put, "/api/v1/users/\(customerId)", token: superadmin, json: ["role": "SELLER"]).json["role"] as? String == "SELLER")
            // Suspension (is_active) is reversible and visible; closing (DELETE) removes the account
            // from the API and from sign-in for good.
            #expect(try await stack.request(.put, "/api/v1/users/\(customerId)", token: admin, json: ["is_active": false]).json["is_active"] as? Bool == false)
            #expect(try await stack.request(.put, "/api/v1/users/\(customerId)", token: admin, json: ["is_active": true]).json["is_active"] as? Bool == true)
            #expect(try await stack.request(.delete, "/api/v1/users/\(customerId)", token: admin).status == .noContent)
            #expect(try await stack.request(.get, "/api/v1/users/\(customerId)", token: admin).status == .notFound)
            #expect(try await stack.request(.put, "/api/v1/users/\(customerId)", token: admin, json: ["is_active": true]).status == .notFound)
            #expect(try await stack.request(.delete, "/api/v1/users/\(customerId)", token: admin).status == .notFound)
            #expect(try await stack.request(.delete, "/api/v1/users/\(adminId)", token: admin).status == .conflict)
            #expect(
                try await stack.request(.post, "/api/v1/auth/login", json: ["email": "\(customerName)@example.com", "password": "correct horse battery"]).status
                    == .unauthorized)
        }
    }

    @Test("sign-in is throttled per account after repeated failures (429 with Retry-After); weak passwords are refused")
    func throttling() async throws {
        try await Stack.apiOnly { stack in
            let email = "\(TestEnvironment.uniqueName("victim"))@example.com"
            _ = try await stack.request(
                .post, "/api/v1/auth/register", json: ["email": email, "password": "the real password", "first_name": "V", "last_name": "W"])
            for _ in 0..<5 {
                #expect(try await stack.request(.post, "/api/v1/auth/login", json: ["email": email, "password": "guess"]).status == .unauthorized)
            }
            let locked = try await stack.request(.post, "/api/v1/auth/login", json: ["email": email, "password": "the real password"])
            #expect(locked.status == .tooManyRequests)
            #expect(Int(locked.headers[.retryAfter] ?? "") ?? 0 >= 1)
            // Another account from the same address is not locked by that (its own limit is 20).
            let (_, _) = try await stack.customer()

            let weak = try await stack.request(
                .post, "/api/v1/auth/register",
                json: ["email": "\(TestEnvironment.uniqueName("w"))@example.com", "password": "password123", "first_name": "A", "last_name": "B"])
            #expect(weak.status == .unprocessableContent)
            #expect(weak.body.contains("too common"))
        }
    }
}
