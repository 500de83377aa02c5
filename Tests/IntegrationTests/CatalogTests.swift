import Foundation
import HTTPTypes
import TestSupport
import Testing

@Suite("Catalog and HTTP protections")
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
        var options = Stack.Options()
        options.inProcessWorkers = false
        try await Stack.run(options) { stack in
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
        options.rateLimit = (5, 10)
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

            try await Task.sleep(for: .seconds(2))
            let huge = String(repeating: "x", count: 70_000)
            let tooLarge = try await stack.request(.post, "/api/v1/auth/login", json: ["email": huge, "password": huge])
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
