import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import OperatorTools
import Store
import Testing

@testable import API

/// Every console template rendered without a browser, empty and full, and the console's
/// HTTP rules that need no signed-in session (the browser tests cover the rest).
@Suite("Operator console pages", .timeLimit(.minutes(2)))
struct ConsolePageTests {
    let viewer: [String: Any] = ["title": "T", "viewer": ["role": "ADMIN", "is_admin": true], "csrf": "c5rf"]

    private func render(_ name: String, _ values: [String: Any]) async throws -> String {
        try await ConsolePages().render(name, viewer.merging(values) { _, new in new })
    }

    @Test("the layout links only this origin's stylesheet and script, and every form carries the CSRF token")
    func layout() async throws {
        let html = try await render("overview", OverviewPages.values(StatusReport()))
        #expect(html.contains(#"<link rel="stylesheet" href="/admin/static/console.css">"#))
        #expect(html.contains(#"<script src="/admin/static/console.js" defer></script>"#))
        #expect(!html.contains("http://") && !html.contains("https://"), "a page names a resource elsewhere")
        #expect(!html.contains("<script>"), "inline script would need unsafe-inline in the CSP")
        #expect(html.contains(#"<input type="hidden" name="csrf" value="c5rf">"#))
    }

    @Test("overview: empty (both servers down) and full")
    func overview() async throws {
        var down = StatusReport()
        down.errors = ["postgres": "connection refused", "rabbitmq": "connection refused"]
        let empty = try await render("overview", OverviewPages.values(down).merging(["chart": ConsoleFormat.barChart([])]) { _, new in new })
        #expect(empty.contains(#"id="postgres-ready">down"#) && empty.contains(#"id="rabbitmq-ready">down"#))
        #expect(empty.contains("postgres: connection refused"))
        var report = StatusReport()
        report.orders = ["CONFIRMED": 7, "CANCELLED": 2]
        report.outbox = .init(unpublished: 3, oldestAgeSeconds: 4, parked: 1)
        report.queues = [.init(role: "payment", queue: "emporium.payment", ready: 5, consumers: 0, deadLetters: 2)]
        let full = try await render("overview", OverviewPages.values(report).merging(["chart": ConsoleFormat.barChart([0, 3, 1])]) { _, new in new })
        #expect(full.contains(#"data-status="CONFIRMED">7<"#) && full.contains(#"id="orders-total">9<"#))
        #expect(full.contains(#"id="outbox-unpublished">3<"#) && full.contains(#"id="outbox-parked">1<"#))
        #expect(full.contains(#"id="dead-letters-total">2<"#))
        #expect(full.contains(#"<td class="num bad">0</td>"#), "a queue without consumers is marked")
        #expect(full.contains("<svg") && full.contains("<rect"))
    }

    @Test("orders list: empty and full, values escaped")
    func orders() async throws {
        let empty = try await render("orders", ["rows": [[String: Any]](), "empty": true, "total": 0, "page": 1])
        #expect(empty.contains("No orders match."))
        let row = OrderPages.row(
            .init(
                id: UUID(), orderNumber: "ORD-1", status: "CONFIRMED", email: "<b>x@example.com</b>", totalCents: 1_250, currency: "EUR", createdAt: Date(),
                paymentFlag: "disputed"))
        let full = try await render("orders", ["rows": [row], "total": 1, "page": 1, "next": "/admin/orders?page=2"])
        #expect(full.contains("ORD-1") && full.contains("12.50 EUR") && full.contains(#"class="flag">disputed"#))
        #expect(full.contains("&lt;b&gt;x@example.com&lt;/b&gt;") && !full.contains("<b>x@"))
        #expect(!full.contains("No orders match."))
        #expect(full.contains(#"rel="next""#))
    }

    @Test("order page: a fresh order and one with everything")
    func order() async throws {
        let bare: [String: Any] = ["id": "o1", "number": "ORD-1", "status": "PENDING", "email": "a@b.c", "items": [[String: Any]](), "can_cancel": true]
        let empty = try await render("order", bare)
        #expect(empty.contains(#"id="cancel""#) && !empty.contains(#"id="ship""#))
        #expect(empty.contains("No payment yet.") && empty.contains("No operator changed this order.") && empty.contains("None sent."))
        let full = try await render(
            "order",
            bare.merging([
                "status": "CONFIRMED", "can_ship": true, "can_cancel": false, "can_refund": true, "trace_id": "abc", "trace_url": "http://jaeger/trace/abc",
                "items": [["name": "Lamp", "sku": "L-1", "quantity": 2, "unit": "1.00 EUR", "line": "2.00 EUR", "product_id": "p1"]],
                "timeline": [["to": "PENDING", "at": "t0"], ["from": "PENDING", "to": "CONFIRMED", "at": "t1"]],
                "payment": ["status": "SUCCEEDED", "provider": "fake", "amount": "2.00 EUR", "refunded": "0.00 EUR"],
                "refunds": [["amount": "1.00 EUR", "status": "SUCCEEDED", "reason": "broken", "restock": true, "created": "t2"]],
                "notifications": [["channel": "email", "template": "order_confirmed", "recipient": "a@b.c", "status": "SENT", "at": "t1"]],
                "audit": [["actor": "admin@x", "actor_id": "u1", "action": "order.shipped", "at": "t3"]],
                "dead_letters": [["message_id": "m1", "queue": "q", "type": "payment.requested", "error": "boom", "attempts": 5]],
            ]) { _, new in new })
        #expect(full.contains(#"id="ship""#) && !full.contains(#"id="cancel""#) && full.contains(#"id="refund-form""#))
        #expect(full.contains(#"name="line_p1""#) && full.contains("order_confirmed") && full.contains("order.shipped") && full.contains("boom"))
        #expect(full.contains(#"href="http://jaeger/trace/abc""#))
    }

    @Test("catalog, accounts, dead letters, confirmation, sign-in and error pages: empty and full")
    func otherPages() async throws {
        #expect(try await render("products", ["products": [[String: Any]](), "empty": true, "total": 0]).contains("No products."))
        #expect(
            try await render("products", ["products": [["id": "p", "name": "Lamp", "sku": "L", "price": "1.00 EUR", "stock": 3, "active": true]], "total": 1])
                .contains("Lamp"))
        let creating = try await render(
            "product-form", ["product": ["currency": "EUR", "stock": "0", "active": true], "action": "/admin/products", "creating": true])
        #expect(creating.contains(">Create<") && !creating.contains(#"name="version""#) && creating.contains("No categories yet."))
        let editing = try await render(
            "product-form",
            [
                "product": ["id": "p", "name": "Lamp", "version": 4, "active": false], "action": "/admin/products/p", "has_audit": true,
                "audit": [["actor": "a", "action": "product.update", "at": "t"]], "problem": "the product changed since version 4",
            ])
        #expect(editing.contains(#"name="version" value="4""#) && editing.contains("the product changed") && editing.contains("product.update"))
        #expect(try await render("categories", ["tree": [[String: Any]](), "empty": true]).contains("No categories yet."))
        #expect(try await render("categories", ["tree": [["name": "Lamps", "slug": "lamps", "depth": 1, "indent": "— "]]]).contains("— Lamps"))
        #expect(try await render("users", ["users": [[String: Any]](), "empty": true, "total": 0]).contains("Nobody matches."))
        let users = try await render(
            "users",
            [
                "users": [
                    [
                        "id": "u", "email": "c@x", "role": "CUSTOMER", "active": false, "manage": true, "has_roles": true,
                        "roles": [["value": "SELLER", "selected": false]],
                    ]
                ], "total": 1,
            ])
        #expect(users.contains("Reinstate") && users.contains("Set role") && users.contains("suspended"))
        #expect(try await render("dead-letters", ["letters": [[String: Any]](), "empty": true, "guard_limit": 3]).contains("No dead letters match."))
        let letters = try await render(
            "dead-letters",
            [
                "letters": [
                    ["message_id": "m1", "type": "payment.requested", "queue": "q.dlq", "error": "<boom>", "attempts": 5, "replays": 3, "guarded": true]
                ],
                "guard_limit": 3,
            ])
        #expect(letters.contains("&lt;boom&gt;") && letters.contains("guarded"))
        let letter = try await render(
            "dead-letter", ["letter": ["message_id": "m1"], "headers": [["name": "x-error", "value": "boom"]], "body": "{\n  \"a\" : 1\n}"])
        #expect(letter.contains("x-error") && letter.contains("&quot;a&quot;"))
        let dry = try await render(
            "dlq-replay",
            ["dry_run": true, "can_replay": true, "replayed_count": 1, "summary": "would replay 1 message(s)", "replayed": [["message_id": "m1"]]])
        #expect(dry.contains(#"id="replay""#) && dry.contains("would replay 1"))
        let none = try await render(
            "dlq-replay", ["dry_run": true, "summary": "would replay 0 message(s)", "refused_count": 1, "has_refused": true, "refused": [["message_id": "m2"]]])
        #expect(!none.contains(#"id="replay""#) && none.contains("refused 1"))
        let confirm = try await render(
            "confirm",
            [
                "question": "Ship order ORD-1?", "action": "/admin/orders/o/status", "fields": [["name": "action", "value": "SHIPPED"]],
                "back": "/admin/orders/o",
            ])
        #expect(confirm.contains(#"name="confirm" value="yes""#) && confirm.contains(#"name="action" value="SHIPPED""#))
        let login = try await ConsolePages().render("login", ["title": "Sign in", "csrf": "t", "next": "/admin"])
        #expect(login.contains(#"id="login-form""#) && !login.contains("Sign out"))
        #expect(try await render("error", ["detail": "order not found"]).contains("order not found"))
    }

    @Test("nil and empty values are left out, so Mustache sections see them as false")
    func pruned() throws {
        let values = ConsolePages.pruned(["a": "", "b": String?.none as Any, "c": "x", "d": [["e": ""]], "f": 0]) as? [String: Any]
        #expect(values?.keys.sorted() == ["c", "d", "f"])
        #expect(((values?["d"] as? [[String: Any]])?.first)?.isEmpty == true)
    }

    @Test("only a path inside the console is a place to go after sign-in")
    func nextIsLocal() {
        #expect(ConsoleController.safeNext("/admin/orders") == "/admin/orders")
        #expect(ConsoleController.safeNext("https://evil.example") == nil)
        #expect(ConsoleController.safeNext("/admin//evil.example") == nil)
        #expect(ConsoleController.safeNext("/api/v1/users") == nil)
    }

    @Test(
        "without a session: pages send the browser to sign in, the live stream is 401, the sign-in form has a CSP and a login cookie, a post without its token is refused"
    )
    func withoutSession() async throws {
        let app = try await buildApplication(configuration: try apiTestConfiguration())
        try await app.test(.live) { client in
            try await client.execute(uri: "/admin/orders", method: .get) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location]?.hasPrefix("/admin/login") == true)
            }
            try await client.execute(uri: "/admin/live", method: .get) { response in #expect(response.status == .unauthorized) }
            try await client.execute(uri: "/admin/login", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
                #expect(response.headers[.contentSecurityPolicy]?.contains("unsafe-inline") == false)
                let cookie = try #require(response.headers[.setCookie])
                #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/admin"))
            }
            try await client.execute(
                uri: "/admin/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "email=a%40b.c&password=x&csrf=abc")
            ) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("The form expired"))
            }
            try await client.execute(uri: "/admin/static/console.css", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/css") == true)
            }
            try await client.execute(uri: "/admin/static/..%2Fopenapi.json", method: .get) { response in #expect(response.status == .notFound) }
        }
    }
}
