import Foundation
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing

@testable import API

@Suite("OpenAPI document, /docs and 405 answers", .timeLimit(.minutes(2)))
struct OpenAPITests {
    @Test("the document is served, is OpenAPI 3.1, and /docs lists every documented path")
    func served() async throws {
        let app = try await buildApplication(configuration: try apiTestConfiguration())
        try await app.test(.live) { client in
            try await client.execute(uri: "/api/v1/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let document = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(document["openapi"] as? String == "3.1.0")
                #expect(Data(buffer: response.body) == (try APIContract.bundled()).bytes, "served other bytes than the checked-in openapi.json")
            }
            let operations = try APIContract.bundled().operations.map(\.key)
            #expect(operations.count >= 40)
            try await client.execute(uri: "/docs", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/html") == true)
                let page = String(buffer: response.body)
                for operation in operations {
                    let path = String(operation.split(separator: " ")[1])
                    #expect(page.contains("<code>\(path)</code>"), "\(path) missing from /docs")
                }
                #expect(page.contains("SUPERADMIN"))
            }
        }
    }

    @Test("the document matches the router exactly, and a drift is detected")
    func matchesRoutes() throws {
        // The real application: buildApplication refuses to start on a drift, so the other
        // tests building it prove it matches; here the comparison itself is checked.
        let router = Router(context: AppRequestContext.self)
        router.get("/health") { _, _ in "ok" }
        router.get("/api/v1/secret") { _, _ in "hidden" }
        let drift = try APIContract.bundled().mismatches(served: Set(router.routes.map { "\($0.method.rawValue) \($0.path)" }))
        #expect(drift.undocumented == ["GET /api/v1/secret"])
        #expect(drift.unrouted.contains("GET /api/v1/products/{id}"))
        #expect(!drift.unrouted.contains("GET /health"))
    }

    @Test("the document's password rule refuses every common password the server refuses")
    func commonPasswords() throws {
        let schemas = try APIContract.bundled().schemas
        let password = try #require((schemas["Registration"]?["properties"] as? [String: Any])?["password"] as? [String: Any])
        let denied = try #require((password["not"] as? [String: Any])?["pattern"] as? String)
        let regex = try NSRegularExpression(pattern: denied)
        for word in AuthController.commonPasswords {
            for variant in [word, word.uppercased(), word.capitalized] {
                let range = NSRange(variant.startIndex..., in: variant)
                #expect(regex.firstMatch(in: variant, range: range) != nil, "\(variant) is refused by the server but allowed by the document")
                #expect(AuthController.passwordProblems(variant).contains("is too common"))
            }
        }
        #expect(AuthController.passwordProblems("a fine passphrase").isEmpty)
        #expect(AuthController.passwordProblems("123456789012").contains("must not be only digits"))
    }

    @Test("a known path with an unsupported method is 405 with Allow; an unknown path stays 404")
    func methodNotAllowed() async throws {
        let app = try await buildApplication(configuration: try apiTestConfiguration())
        try await app.test(.live) { client in
            try await client.execute(uri: "/api/v1/products", method: .patch) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, POST")
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            // The literal `me` route owns this path, not `users/{id}` (which also has DELETE).
            try await client.execute(uri: "/api/v1/users/me", method: .delete) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, PUT")
            }
            try await client.execute(uri: "/api/v1/users/\(UUID())", method: .post) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "DELETE, GET, PUT")
            }
            try await client.execute(uri: "/api/v1/nothing-here", method: .get) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test("field rules count code points and refuse blank text, NUL and malformed emails and URLs")
    func fieldRules() {
        #expect(FieldRules.isText("é\u{301}", max: 2))  // two code points, one grapheme
        #expect(!FieldRules.isText("e\u{301}e", max: 2))
        #expect(!FieldRules.isText(" \t\r\n", max: 10))
        #expect(FieldRules.isText("\u{3000}x", max: 10))
        #expect(!FieldRules.isText("a\u{0}b", max: 10))
        #expect(FieldRules.isEmail("a.b+c@shop.example.com"))
        for bad in ["a@b", "a b@c.de", "@c.de", "a@.de", "a@c..de", "a@c.de.", "ä@c.de"] { #expect(!FieldRules.isEmail(bad), "\(bad)") }
        #expect(FieldRules.isHTTPURL("https://cdn.example.com:8443/img/a.png?x=1"))
        for bad in ["ftp://x.y/a", "https://", "https://a:/x", "https://a b/x", "https://a/ b", "https://a:123456/"] {
            #expect(!FieldRules.isHTTPURL(bad), "\(bad)")
        }
    }
}
