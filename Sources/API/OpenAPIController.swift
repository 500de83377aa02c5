import Foundation
import Hummingbird

/// `GET /api/v1/openapi.json` (the OpenAPI 3.1 document) and `GET /docs` (a readable page).
struct OpenAPIController: Sendable {
    func register(on router: Router<AppRequestContext>) {
        router.get("/api/v1/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "public, max-age=300"],
                     body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
        router.get("/docs") { _, _ in
            // The page carries its own small stylesheet; everything else stays forbidden.
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"],
                     body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.docsPage)))
        }
    }

    /// The operations of the document, as `METHOD /path` (e.g. `GET /api/v1/products/{id}`).
    static func documentedOperations() throws -> Set<String> {
        guard let document = try JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any],
              let paths = document["paths"] as? [String: [String: Any]]
        else { throw ConfigurationError("the OpenAPI document has no paths") }
        return Set(paths.flatMap { path, operations in operations.keys.map { "\($0.uppercased()) \(path)" } })
    }

    /// Routes the router serves that the document lacks, and documented operations no route
    /// serves. Both empty means the document matches the code; `buildApplication` refuses to
    /// start otherwise.
    static func mismatches(_ routes: [Router<AppRequestContext>.RouteDescription]) throws -> (undocumented: [String], unrouted: [String]) {
        let served = Set(routes.map { "\($0.method.rawValue) \($0.path)" })
        let documented = try documentedOperations()
        return (served.subtracting(documented).sorted(), documented.subtracting(served).sorted())
    }
}
