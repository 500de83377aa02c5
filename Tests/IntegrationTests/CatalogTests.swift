import Foundation
import HTTPTypes
import TestSupport
import Testing

@Suite("Catalog: optimistic locking on product updates")
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
}
