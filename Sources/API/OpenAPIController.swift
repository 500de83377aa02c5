import Foundation
import Hummingbird

/// `GET /api/v1/openapi.json` (the checked-in OpenAPI 3.1 document, byte for byte) and
/// `GET /docs` (a readable page rendered from it).
struct OpenAPIController: Sendable {
    let document: APIContract
    private let docsPage: String

    init(document: APIContract) {
        self.document = document
        self.docsPage = DocsPage.html(for: document)
    }

    func register(on router: Router<AppRequestContext>) {
        router.get("/api/v1/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "public, max-age=300"],
                body: .init(byteBuffer: ByteBuffer(bytes: document.bytes)))
        }
        router.get("/docs") { _, _ in
            // The page carries its own small stylesheet; everything else stays forbidden.
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                ],
                body: .init(byteBuffer: ByteBuffer(string: docsPage)))
        }
    }
}
