import Domain
import Foundation
import HTTPTypes
import Operations
import Postgres
import TestSupport
import Testing

/// Each abuse that got through before, tried again black-box over HTTP against the real
/// stack, and refused.
@Suite("Security hardening", .timeLimit(.minutes(5)))
struct SecurityHardeningTests {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    /// A user with `role`, created as `emporium user create` does; returns (id, token).
    private func account(_ stack: Stack, role: Role) async throws -> (UUID, String) {
        let email = "\(TestEnvironment.uniqueName(role.rawValue.lowercased()))@example.com"
        let id = try await Accounts(pool: stack.db, bcryptCost: 4).createUser(
            email: email, password: "a long password", role: role, firstName: "T", lastName: "U")
        return (id, try await stack.login(email, "a long password"))
    }

    @Test(
        "access tokens follow the account: a suspended admin cannot reinstate themselves, a closed account's token reads nothing, a demoted admin loses admin rights, signing out everywhere ends every token"
    )
    func tokensFollowTheAccount() async throws {
        try await Stack.apiOnly { stack in
            let (superId, superadmin) = try await account(stack, role: .superadmin)
            let (adminId, admin) = try await account(stack, role: .admin)

            // 1. Suspended, the admin's old token is refused, so it cannot undo the suspension.
            #expect(try await stack.request(.put, "/api/v1/users/\(adminId)", token: superadmin, json: ["is_active": false]).status == .ok)
            #expect(try await stack.request(.put, "/api/v1/users/\(adminId)", token: admin, json: ["is_active": true]).status == .unauthorized)
            #expect(try await stack.request(.get, "/api/v1/users/me", token: admin).status == .unauthorized)
            #expect(try await stack.count("SELECT count(*) FROM users WHERE id = $1 AND is_active", [adminId]) == 0)

            // Nobody changes their own standing, even while active.
            let (otherAdminId, otherAdmin) = try await account(stack, role: .admin)
            let selfSuspend = try await stack.request(.put, "/api/v1/users/\(otherAdminId)", token: otherAdmin, json: ["is_active": false])
            #expect(selfSuspend.status == .forbidden)
            #expect(try await stack.request(.put, "/api/v1/users/\(superId)", token: superadmin, json: ["role": "ADMIN"]).status == .forbidden)

            // A demoted admin has a customer's rights at once.
            #expect(try await stack.request(.get, "/api/v1/users", token: otherAdmin).status == .ok)
            #expect(try await stack.request(.put, "/api/v1/users/\(otherAdminId)", token: superadmin, json: ["role": "CUSTOMER"]).status == .ok)
            #expect(try await stack.request(.get, "/api/v1/users", token: otherAdmin).status == .forbidden)

            // A closed account's token reads nothing, not even its cart.
            let (customerId, customer) = try await stack.customer()
            #expect(try await stack.request(.get, "/api/v1/cart", token: customer).status == .ok)
            #expect(try await stack.request(.delete, "/api/v1/users/\(customerId)", token: superadmin).status == .noContent)
            #expect(try await stack.request(.get, "/api/v1/cart", token: customer).status == .unauthorized)

            // Signing out everywhere ends every access token and every refresh token.
            let email = "\(TestEnvironment.uniqueName("everywhere"))@example.com"
            _ = try await stack.request(
                .post, "/api/v1/auth/register", json: ["email": email, "password": "a long password", "first_name": "E", "last_name": "W"])
            let first = try await stack.request(.post, "/api/v1/auth/login", json: ["email": email, "password": "a long password"]).json
            let second = try await stack.request(.post, "/api/v1/auth/login", json: ["email": email, "password": "a long password"]).json
            let access = try #require(first["access_token"] as? String), otherAccess = try #require(second["access_token"] as? String)
            let refresh = try #require(second["refresh_token"] as? String)
            #expect(try await stack.request(.post, "/api/v1/auth/logout-all", token: access).status == .noContent)
            #expect(try await stack.request(.get, "/api/v1/users/me", token: otherAccess).status == .unauthorized)
            #expect(try await stack.request(.post, "/api/v1/auth/refresh", json: ["refresh_token": refresh]).status == .unauthorized)
            #expect(try await stack.request(.post, "/api/v1/auth/login", json: ["email": email, "password": "a long password"]).status == .ok)

            // A refresh-token family ends REFRESH_FAMILY_MAX_DAYS (90) after its sign-in,
            // however often it was refreshed.
            let fresh = try await stack.request(.post, "/api/v1/auth/login", json: ["email": email, "password": "a long password"]).json
            let freshRefresh = try #require(fresh["refresh_token"] as? String)
            let rotated = try await stack.request(.post, "/api/v1/auth/refresh", json: ["refresh_token": freshRefresh])
            #expect(rotated.status == .ok)
            let rotatedRefresh = try #require(rotated.json["refresh_token"] as? String)
            try await stack.db.query(
                "UPDATE refresh_tokens SET family_started_at = now() - interval '91 days' WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE used_at IS NOT NULL ORDER BY created_at DESC LIMIT 1)"
            )
            #expect(try await stack.request(.post, "/api/v1/auth/refresh", json: ["refresh_token": rotatedRefresh]).status == .unauthorized)
        }
    }

    @Test("30 concurrent wrong sign-ins for one account: at most the configured 5 are answered 401, the rest 429; the owner then signs in from another address")
    func concurrentGuesses() async throws {
        var options = Stack.Options()
        options.inProcessWorkers = false
        options.trustedProxies = ["127.0.0.1/32", "::1/128"]
        options.apiPoolSize = 10  // the production default: thirty sign-ins at once must not starve it
        try await Stack.run(options) { stack in
            let email = "\(TestEnvironment.uniqueName("target"))@example.com"
            _ = try await stack.request(
                .post, "/api/v1/auth/register", json: ["email": email, "password": "the owner's password", "first_name": "O", "last_name": "W"])
            let attacker: HTTPFields = [Self.forwardedFor: "203.0.113.7"]
            // Thirty connections at once, so the guesses really race.
            let http = ParallelHTTP(port: stack.port)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for index in 0..<30 {
                    // However the email is typed, it is the same account.
                    let typed = index % 2 == 0 ? email : email.uppercased()
                    group.addTask {
                        try await http.post(
                            "/api/v1/auth/login", json: ["email": typed, "password": "guess \(index)"], headers: [("X-Forwarded-For", "203.0.113.7")]
                        ).status
                    }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            await http.shutdown()
            let unauthorized = statuses.filter { $0 == .unauthorized }.count
            let throttled = statuses.filter { $0 == .tooManyRequests }.count
            #expect(unauthorized <= 5, "\(unauthorized) guesses were checked")
            #expect(unauthorized + throttled == 30, "\(statuses)")
            // The attacker's address stays refused, even with the right password…
            #expect(
                try await stack.request(.post, "/api/v1/auth/login", json: ["email": email, "password": "the owner's password"], headers: attacker).status
                    == .tooManyRequests)
            // …but the owner, elsewhere, is not locked out.
            let owner = try await stack.request(
                .post, "/api/v1/auth/login", json: ["email": email, "password": "the owner's password"],
                headers: [Self.forwardedFor: "198.51.100.20"])
            #expect(owner.status == .ok, "\(owner.body)")
        }
    }

    @Test("X-Forwarded-For is believed only from a trusted proxy")
    func forwardedForNeedsTrust() async throws {
        try await Stack.apiOnly { stack in
            let email = "\(TestEnvironment.uniqueName("spoof"))@example.com"
            _ = try await stack.request(
                .post, "/api/v1/auth/register", json: ["email": email, "password": "the owner's password", "first_name": "S", "last_name": "P"])
            // Without TRUSTED_PROXIES a client cannot dodge its throttle by claiming other addresses.
            for index in 0..<5 {
                let status = try await stack.request(
                    .post, "/api/v1/auth/login", json: ["email": email, "password": "guess"],
                    headers: [Self.forwardedFor: "192.0.2.\(index + 1)"]
                ).status
                #expect(status == .unauthorized)
            }
            #expect(
                try await stack.request(
                    .post, "/api/v1/auth/login", json: ["email": email, "password": "guess"],
                    headers: [Self.forwardedFor: "192.0.2.99"]
                ).status == .tooManyRequests)
        }
    }

    @Test("prices are honest: a stale price or an inactive product cannot be ordered; the cart is re-priced and the client confirms the new total")
    func honestPrices() async throws {
        try await Stack.apiOnly { stack in
            let (admin, productId, (_, token)) = try await stack.filledCart(stock: 1_000, priceCents: 1_000)
            // The price rises after the line was added, and the quantity grows.
            var change = try await stack.request(.get, "/api/v1/products/\(productId)", token: admin).json
            change["price_cents"] = 100_000
            #expect(try await stack.request(.put, "/api/v1/products/\(productId)", token: admin, json: change).status == .ok)
            let line = try #require((try await stack.request(.get, "/api/v1/cart", token: token).json["items"] as? [[String: Any]])?.first)
            let lineId = try #require(line["id"] as? String)
            #expect(line["unit_price_cents"] as? Int == 1_000, "the line keeps the price it was added at until it changes")
            let refused = try await stack.request(
                .post, "/api/v1/orders", token: token, json: Stack.orderBody(),
                headers: [HTTPField.Name("Idempotency-Key")!: UUID().uuidString])
            #expect(refused.status == .conflict)
            #expect(refused.body.contains(productId.uuidString.lowercased()))
            #expect(refused.body.contains("1000.00"))
            // The cart now shows the current price; a changed quantity is priced now too.
            let updated = try await stack.request(.put, "/api/v1/cart/items/\(lineId)", token: token, json: ["quantity": 3])
            #expect(((updated.json["items"] as? [[String: Any]])?.first?["unit_price_cents"] as? Int) == 100_000)
            // A client that states another total is refused; the right one is accepted.
            let wrongTotal = try await stack.request(
                .post, "/api/v1/orders", token: token, json: Stack.orderBody().merging(["expected_total_cents": 3_000]) { $1 },
                headers: [HTTPField.Name("Idempotency-Key")!: UUID().uuidString])
            #expect(wrongTotal.status == .conflict)
            let placed = try await stack.request(
                .post, "/api/v1/orders", token: token, json: Stack.orderBody().merging(["expected_total_cents": 300_000]) { $1 },
                headers: [HTTPField.Name("Idempotency-Key")!: UUID().uuidString])
            #expect(placed.status == .created, "\(placed.body)")
            #expect(placed.json["total_cents"] as? Int == 300_000)

            // A product taken off sale cannot be ordered.
            try await stack.addToCart(token, productId, quantity: 1)
            var off = try await stack.request(.get, "/api/v1/products/\(productId)", token: admin).json
            off["is_active"] = false
            #expect(try await stack.request(.put, "/api/v1/products/\(productId)", token: admin, json: off).status == .ok)
            let inactive = try await stack.request(
                .post, "/api/v1/orders", token: token, json: Stack.orderBody(),
                headers: [HTTPField.Name("Idempotency-Key")!: UUID().uuidString])
            #expect(inactive.status == .conflict)
            #expect(inactive.body.contains("items.\(productId.uuidString.lowercased())"))
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM orders WHERE total_cents <> 300000 AND id IN (SELECT order_id FROM order_items WHERE product_id = $1)", [productId])
                    == 0)
        }
    }

    @Test(
        "unpaid orders cannot hoard stock: at most MAX_UNPAID_ORDERS_PER_USER manual orders wait, and each expires after MANUAL_PAYMENT_TIMEOUT_SECONDS with its stock back"
    )
    func noHoarding() async throws {
        var options = Stack.Options()
        options.maxUnpaidOrders = 3
        // Long enough that the three orders still wait when the fourth is tried, even on a
        // loaded machine (a 3 s timeout let the first expire before the fourth in CI).
        let timeout = Duration.seconds(15)
        options.manualPaymentTimeout = timeout
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10)
            let (_, token) = try await stack.customer()
            var orders: [UUID] = []
            let firstPlaced = ContinuousClock.now
            for _ in 0..<3 {
                try await stack.addToCart(token, productId, quantity: 3)
                orders.append(try await stack.placeOrder(token, paymentMethod: "manual"))
            }
            try await stack.addToCart(token, productId, quantity: 1)
            let fourth = try await stack.request(
                .post, "/api/v1/orders", token: token, json: Stack.orderBody("manual"),
                headers: [HTTPField.Name("Idempotency-Key")!: UUID().uuidString])
            let elapsed = ContinuousClock.now - firstPlaced
            try #require(elapsed < timeout, "placing four orders took \(elapsed), longer than the payment timeout: the limit cannot be judged")
            #expect(fourth.status == .conflict)
            #expect(fourth.body.contains("waiting for payment"))
            // The held stock comes back when they expire.
            for order in orders {
                let final = try await stack.awaitTerminal(order, timeout: .seconds(60))
                #expect(final.status == "CANCELLED")
                #expect(final.reason == "expired")
            }
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.stock(productId)) == 10 })
        }
    }

    @Test("control characters in names and addresses are refused with 422 naming the field")
    func controlCharacters() async throws {
        try await Stack.apiOnly { stack in
            for name in ["Eve\r\nSubject: urgent", "Eve\rPlease wire", "Eve\u{2028}x", "Eve\u{0085}", "Eve\tTab"] {
                let registered = try await stack.request(
                    .post, "/api/v1/auth/register",
                    json: [
                        "email": "\(TestEnvironment.uniqueName("eve"))@example.com", "password": "a long password", "first_name": name, "last_name": "Doe",
                    ])
                #expect(registered.status == .unprocessableContent, "\(name.debugDescription): \(registered.status)")
                #expect(registered.body.contains("first_name"))
            }
            let (_, token) = try await stack.customer()
            let profile = try await stack.request(.put, "/api/v1/users/me", token: token, json: ["first_name": "A\nB", "last_name": "C"])
            #expect(profile.status == .unprocessableContent)
            let address = try await stack.request(
                .post, "/api/v1/users/me/addresses", token: token,
                json: [
                    "line1": "1 Main St\r\nBcc: x@example.com", "city": "Berlin", "postal_code": "10115", "country": "DE",
                ])
            #expect(address.status == .unprocessableContent)
            #expect(address.body.contains("line1"))
            let order = try await stack.request(
                .post, "/api/v1/orders", token: token,
                json: [
                    "payment_method": "tok_visa", "shipping_address": ["line1": "1 Main St", "city": "Ber\rlin", "postal_code": "10115", "country": "DE"],
                ], headers: [HTTPField.Name("Idempotency-Key")!: UUID().uuidString])
            #expect(order.status == .unprocessableContent)
            #expect(order.body.contains("shipping_address.city"))
        }
    }

    @Test("/health stays open and cheap; /ready is rate limited; /metrics is not served on the API port")
    func probesAndMetrics() async throws {
        var options = Stack.Options()
        options.inProcessWorkers = false
        options.rateLimit = (0.01, 3)
        try await Stack.run(options) { stack in
            #expect(try await stack.request(.get, "/metrics").status == .notFound)
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<10 { statuses.append(try await stack.request(.get, "/ready").status) }
            #expect(statuses.contains(.tooManyRequests))
            for _ in 0..<10 { #expect(try await stack.request(.get, "/health").status == .ok) }
        }
    }
}

/// A burst of sign-ups at the production bcrypt cost: it loads the machine on purpose, so
/// `make test` runs it with the suites that run one test at a time.
@Suite("Sign-up bursts", .timeLimit(.minutes(3)))
struct RegistrationBurstTests {
    static let forwardedFor = SecurityHardeningTests.forwardedFor

    @Test("100 concurrent registrations while a customer signs in: the sign-in stays under 1 s; extra registrations get 429 or 503, never a hang")
    func registrationBurst() async throws {
        var options = Stack.Options()
        options.inProcessWorkers = false
        options.bcryptCost = 11  // the production cost: the burst must cost what it costs for real
        options.trustedProxies = ["127.0.0.1/32", "::1/128"]
        options.registrationsPerHour = 5
        try await Stack.run(options) { stack in
            let email = "\(TestEnvironment.uniqueName("regular"))@example.com"
            let owner: HTTPFields = [Self.forwardedFor: "198.51.100.1"]
            #expect(
                try await stack.request(
                    .post, "/api/v1/auth/register", json: ["email": email, "password": "a long password", "first_name": "R", "last_name": "U"],
                    headers: owner
                ).status == .created)
            // Unloaded, for comparison.
            let calmStart = ContinuousClock.now
            #expect(try await stack.request(.post, "/api/v1/auth/login", json: ["email": email, "password": "a long password"], headers: owner).status == .ok)
            let calm = ContinuousClock.now - calmStart

            // The burst comes from 100 addresses on 100 connections, so no per-address budget
            // stops it: only the bounded hashing lane stands between it and the API.
            let http = ParallelHTTP(port: stack.port)
            let burst = Task {
                try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for index in 0..<100 {
                        group.addTask {
                            try await http.post(
                                "/api/v1/auth/register",
                                json: [
                                    "email": "\(TestEnvironment.uniqueName("burst"))@example.com", "password": "a long password", "first_name": "B",
                                    "last_name": "\(index)",
                                ], headers: [("X-Forwarded-For", "10.\(index / 250).\(index % 250).9")]
                            ).status
                        }
                    }
                    return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
                }
            }
            // Sign in once the burst is being hashed (its first accounts appear).
            _ = await TestEnvironment.eventually(timeout: .seconds(10)) {
                (try? await stack.count("SELECT count(*) FROM users WHERE last_name ~ '^[0-9]+$'")) ?? 0 >= 1
            }
            let started = ContinuousClock.now
            let signIn = try await http.post(
                "/api/v1/auth/login", json: ["email": email, "password": "a long password"], headers: [("X-Forwarded-For", "198.51.100.1")])
            let busy = ContinuousClock.now - started
            let statuses = try await burst.value
            await http.shutdown()
            print(
                "registration burst: sign-in took \(busy) under load (\(calm) without); registrations: "
                    + "\(statuses.filter { $0 == .created }.count) created, \(statuses.filter { $0 == .serviceUnavailable }.count) 503, "
                    + "\(statuses.filter { $0 == .tooManyRequests }.count) 429")
            #expect(signIn.status == .ok)
            #expect(busy < .seconds(1), "the sign-in took \(busy) during the burst")
            #expect(statuses.count == 100)
            #expect(statuses.allSatisfy { [.created, .serviceUnavailable, .tooManyRequests].contains($0) }, "\(statuses)")
            #expect(statuses.contains(.serviceUnavailable), "the hashing lane should have refused some of the burst")

            // From one address, the registration budget (5 an hour here) answers 429.
            let sameAddress: HTTPFields = [Self.forwardedFor: "192.0.2.50"]
            var fromOne: [HTTPResponse.Status] = []
            for index in 0..<8 {
                fromOne.append(
                    try await stack.request(
                        .post, "/api/v1/auth/register",
                        json: [
                            "email": "\(TestEnvironment.uniqueName("same"))@example.com", "password": "a long password", "first_name": "S",
                            "last_name": "A\(index)",
                        ], headers: sameAddress
                    ).status)
            }
            #expect(fromOne.filter { $0 == .tooManyRequests }.count >= 3, "\(fromOne)")
        }
    }
}
