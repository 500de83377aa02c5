import Foundation

/// `/docs`: a readable page rendered once from the OpenAPI document, so the two cannot differ.
enum DocsPage {
    static func html(for document: APIContract) -> String {
        let rows = document.operations.map { operation in
            "<tr><td><code>\(operation.method)</code></td><td><code>\(escape(operation.path))</code></td>"
                + "<td>\(escape(operation.summary))</td><td>\(escape(operation.roles))</td></tr>"
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Emporium API</title>
            <style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}td,th{padding:.3rem .6rem;text-align:left;vertical-align:top}tr:nth-child(even){background:#f4f4f4}</style>
            </head><body>
            <h1>Emporium API</h1>
            <p>The machine-readable description is <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> (OpenAPI 3.1): request and response schemas, every status code.</p>
            <p>Sign in with <code>POST /api/v1/auth/login</code> and send <code>Authorization: Bearer &lt;access_token&gt;</code>. JSON is snake_case. Errors are
            <code>application/problem+json</code> (RFC 9457) with the offending fields in <code>errors</code>. Bodies are at most 64 KiB, pages at most 100 items;
            too many requests get 429 with <code>Retry-After</code>.</p>
            <h2>Roles</h2>
            <ul><li><b>CUSTOMER</b>: own profile, addresses, cart, orders, payments, reviews.</li>
            <li><b>SELLER</b>: also creates products and manages only its own.</li>
            <li><b>ADMIN</b>: the whole catalog, every order (shipping, delivery), users.</li>
            <li><b>SUPERADMIN</b>: also changes roles and manages other admins.</li></ul>
            <h2>Operations</h2>
            <table><tr><th>Method</th><th>Path</th><th>What it does</th><th>Who</th></tr>
            \(rows.joined(separator: "\n"))
            </table></body></html>

            """
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;").replacingOccurrences(of: "'", with: "&#x27;")
    }
}
