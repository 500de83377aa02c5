import Foundation
import HTTPTypes
import TestSupport
import Testing

@Suite("Catalog and HTTP protections", .timeLimit(.minutes(10)))
struct CatalogTests {
    private func update(_ stack: Stack, _ token: String, _ id: UUID, name: String, version: Int?, ifMatch: String? = nil) async throws -> Stack.HTTPResult {
        var body: [String: Any] = ["name": name, "sku": "LOCK-\(id.uuidString.prefix(8))", "price_cents": 500, "currency": "EUR", "stock": 3]
        if let version { body["version"] = version }
        var headers: HTTPFields = [:]
        if let ifMatch { headers[.ifMatch] = ifMatch }
        return try await stack.request(.put, "/api/v1/products/\(id)", token: token, json: body, headers: headers)
    }

    @Test("two concurrent updates of one product with the same version: exactly one wins, the other is refused and changes nothing")
    func concurrentUpdates() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await stack.admin()
            let id = try await stack.product(admin, stock: 3)
            let read = try await stack.request(.get, "/api/v1/products/\(id)")
            let version = try #require(read.json["version"] as? Int)
            #expect(read.headers[.eTag] == "\"\(version)\"")

            async let a = update(stack, admin, id, name: "Alpha", version: version)
            async let b = update(stack, admin, id, name: "Beta", version: version)
            let (first, second) = try await (a, b)
            let statuses = [first.status, second.status]
            #expect(statuses.filter { $0 == .ok }.count == 1)
            #expect(statuses.filter { $0 == .conflict }.count == 1)
            let winner = first.status == .ok ? "Alpha" : "Beta"
            let now = try await stack.request(.get, "/api/v1/products/\(id)").json
            #expect(now["name"] as? String == winner)
            #expect(now["version"] as? Int == version + 1)

            // If-Match works the same way, with 412 when stale; no version at all is 428.
            #expect(try await update(stack, admin, id, name: "Gamma", version: nil, ifMatch: "\"\(version)\"").status == .preconditionFailed)
            #expect(try await update(stack, admin, id, name: "Gamma", version: nil, ifMatch: "\"\(version + 1)\"").status == .ok)
            #expect(try await update(stack, admin, id, name: "Delta", version: nil).status == .preconditionRequired)
            #expect(try await stack.request(.get, "/api/v1/products/\(id)").json["name"] as? String == "Gamma")
        }
    }

    @Test("a flood of requests gets 429 with Retry-After; bodies over 64 KiB get 413; every response has a request id and security headers")
    func protections() async throws {
        var options = Stack.Options()
        options.inProcessWorkers = false
        // A burst of 10, then one request per 2 s: the flood outruns it however slow the machine.
        options.rateLimit = (0.5, 10)
        try await Stack.run(options) { stack in
            var statuses: [HTTPResponse.Status] = []
            var retryAfter: String?
            for _ in 0..<40 {
                let response = try await stack.request(.get, "/api/v1/products")
                statuses.append(response.status)
                if response.status == .tooManyRequests {
                    retryAfter = response.headers[.retryAfter]
                    #expect(response.headers[.contentType] == "application/problem+json")
                }
            }
            #expect(statuses.prefix(10).allSatisfy { $0 == .ok })  // the burst
            #expect(statuses.contains(.tooManyRequests))
            #expect(Int(retryAfter ?? "") ?? 0 >= 1)
            #expect(try await stack.request(.get, "/health").status == .ok)  // probes are exempt

            // The bucket refills one request per 2 s: retry the large body until it gets past
            // the limiter, then it must be refused for its size.
            let huge = String(repeating: "x", count: 70_000)
            var tooLarge = try await stack.request(.post, "/api/v1/auth/login", json: ["email": huge, "password": huge])
            _ = try await TestEnvironment.eventually(timeout: .seconds(15)) {
                tooLarge = try await stack.request(.post, "/api/v1/auth/login", json: ["email": huge, "password": huge])
                return tooLarge.status != .tooManyRequests
            }
            #expect(tooLarge.status == .contentTooLarge)

            let plain = try await stack.request(.get, "/health")
            #expect(plain.headers[HTTPField.Name("X-Request-Id")!]?.isEmpty == false)
            #expect(plain.headers[.xContentTypeOptions] == "nosniff")
            #expect(plain.headers[.contentSecurityPolicy] != nil)
            let echoed = try await stack.request(.get, "/health", headers: [HTTPField.Name("X-Request-Id")!: "req-123"])
            #expect(echoed.headers[HTTPField.Name("X-Request-Id")!] == "req-123")
            let allowed = try await stack.request(.get, "/health", headers: [.origin: "https://shop.example"])
            #expect(allowed.headers[.accessControlAllowOrigin] == "https://shop.example")
            let foreign = try await stack.request(.get, "/health", headers: [.origin: "https://evil.example"])
            #expect(foreign.headers[.accessControlAllowOrigin] == nil)
        }
    }
}

@Suite("Catalog search, filters and categories", .timeLimit(.minutes(10)))
struct SearchTests {
    @Test("search ranks relevant products first, filters combine, pages are stable, page_size is capped")
    func search() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await stack.admin()
            let kitchen = try #require(
                try await stack.request(.post, "/api/v1/categories", token: admin, json: ["name": "Kitchen", "slug": "kitchen"]).json["id"] as? String)
            let cups = try #require(
                try await stack.request(.post, "/api/v1/categories", token: admin, json: ["name": "Cups", "slug": "cups", "parent_id": kitchen]).json["id"]
                    as? String)
            #expect(
                try await stack.request(.put, "/api/v1/categories/\(kitchen)", token: admin, json: ["name": "Kitchen", "slug": "kitchen", "parent_id": cups])
                    .status == .conflict)
            #expect(try await stack.request(.post, "/api/v1/categories", token: admin, json: ["name": "Dup", "slug": "kitchen"]).status == .conflict)
            let (_, customer) = try await stack.customer()
            #expect(try await stack.request(.post, "/api/v1/categories", token: customer, json: ["name": "X", "slug": "x"]).status == .forbidden)

            func product(_ name: String, _ description: String, price: Int, stock: Int, categories: [String]) async throws -> String {
                let response = try await stack.request(
                    .post, "/api/v1/products", token: admin,
                    json: [
                        "name": name, "description": description, "sku": TestEnvironment.uniqueName("S"), "price_cents": price, "currency": "EUR",
                        "stock": stock, "category_ids": categories, "images": ["https://img.example/\(price).jpg"],
                    ])
                return try #require(response.json["id"] as? String, "\(response.body)")
            }
            let mug = try await product("Coffee mug", "A large mug for coffee", price: 1_200, stock: 5, categories: [cups])
            let beans = try await product("Coffee beans", "Roasted beans", price: 1_800, stock: 0, categories: [kitchen])
            let book = try await product("Notebook", "Paper notebook; great with coffee", price: 900, stock: 9, categories: [])
            _ = try await product("Teapot", "Ceramic teapot", price: 3_000, stock: 2, categories: [kitchen])

            func ids(_ query: String) async throws -> [String] {
                let response = try await stack.request(.get, "/api/v1/products?\(query)")
                #expect(response.status == .ok, "\(query): \(response.body)")
                return (response.json["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            }
            let coffee = try await ids("q=coffee")
            #expect(Set(coffee) == [mug, beans, book])
            #expect(coffee.last == book)  // only in its description: ranked below name matches
            #expect(try await ids("q=coffee&in_stock=true").contains(beans) == false)
            #expect(try await ids("q=coffee&max_price=1500&in_stock=true").sorted() == [mug, book].sorted())
            #expect(Set(try await ids("category=kitchen")).isSuperset(of: [mug, beans]))  // subcategories included
            #expect(try await ids("category=cups") == [mug])
            #expect(try await ids("min_price=1000&max_price=2000&sort=price_asc") == [mug, beans])
            #expect(try await ids("sort=price_desc").first != nil)
            // Stable pages: walking pages of 1 visits every product once.
            var walked: [String] = []
            for page in 1...4 { walked += try await ids("sort=name&page=\(page)&page_size=1") }
            #expect(walked.count == 4 && Set(walked).count == 4)
            #expect(try await stack.request(.get, "/api/v1/products?page_size=1000").status == .badRequest)
            #expect(try await stack.request(.get, "/api/v1/products?sort=drop%20table").status == .badRequest)
            #expect(try await stack.request(.get, "/api/v1/products?min_price=-5").status == .badRequest)
            let one = try await stack.request(.get, "/api/v1/products/\(mug)").json
            #expect((one["category_ids"] as? [String])?.map { $0.lowercased() } == [cups.lowercased()])
            #expect((one["images"] as? [String])?.count == 1)
        }
    }
}
