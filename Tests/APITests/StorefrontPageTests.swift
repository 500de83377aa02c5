import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Payments
import Postgres
import Settings
import TestSupport
import Testing

@testable import API

/// The storefront's templates rendered without a browser, empty and full, and its HTTP rules
/// that need no session (the browser tests cover the rest).
@Suite("Storefront pages", .timeLimit(.minutes(2)))
struct StorefrontPageTests {
    private func render(_ name: String, _ values: [String: Any], signedIn: Bool = true) async throws -> String {
        var all: [String: Any] = ["title": "T"]
        if signedIn {
            all["viewer"] = true
            all["csrf"] = "c5rf"
        }
        return try await ConsolePages(face: "shop", policy: ConsolePages.storefrontPolicy).render(name, all.merging(values) { _, new in new })
    }

    @Test("home and search: empty and full; product cards escape names")
    func catalog() async throws {
        let empty = try await render("home", ["products": [[String: Any]](), "empty": true], signedIn: false)
        #expect(empty.contains("Nothing matches") && empty.contains(#"id="signin-link""#) && !empty.contains("Sign out"))
        let card: [String: Any] = ["id": "p1", "name": "<Pen>", "price": "34.90 EUR", "in_stock": true, "rating": "4.5", "rating_count": 2]
        let full = try await render(
            "search", ["products": [card], "total": 1, "page": 1, "sorts": [["value": "newest", "label": "Newest", "selected": true]]])
        #expect(full.contains("&lt;Pen&gt;") && !full.contains("<Pen>") && full.contains("★ 4.5 (2)") && full.contains("Sign out"))
        #expect(!full.contains("<script>"))
    }

    @Test("product: in stock with the add form, out of stock without it; the review form only when allowed")
    func product() async throws {
        let product: [String: Any] = ["id": "p1", "name": "Pen", "price": "1.00 EUR", "in_stock": true, "stock": 3, "max_quantity": 3]
        let buyable = try await render("product", ["product": product, "review_count": 0])
        #expect(
            buyable.contains(#"id="add-to-cart""#) && buyable.contains(#"max="3""#) && buyable.contains("No reviews yet.") && !buyable.contains("review-form"))
        var gone = product
        gone["in_stock"] = false
        let soldOut = try await render(
            "product", ["product": gone, "may_review": true, "review_count": 1, "reviews": [["author": "Ann", "stars": "★★★★☆", "body": "Nice"]]])
        #expect(!soldOut.contains(#"id="add-to-cart""#) && soldOut.contains("Out of stock") && soldOut.contains("review-form") && soldOut.contains("Nice"))
    }

    @Test("cart and checkout: empty and full, price changes explained, the idempotency key and the expected total in the form")
    func cartAndCheckout() async throws {
        #expect(try await render("cart", ["lines": [[String: Any]](), "empty": true]).contains(#"id="cart-empty""#))
        let line: [String: Any] = [
            "id": "l1", "product_id": "p1", "name": "Pen", "quantity": 2, "unit": "1.00 EUR", "line": "2.00 EUR",
            "note": "Pen: the price changed from 0.90 to 1.00 EUR",
        ]
        let totals: [String: Any] = ["subtotal": "2.00 EUR", "tax": "0.00 EUR", "shipping": "0.00 EUR", "total": "2.00 EUR", "total_cents": 200]
        let cart = try await render("cart", ["lines": [line], "totals": totals, "notes": ["Pen: the price changed from 0.90 to 1.00 EUR"]])
        #expect(cart.contains("the price changed") && cart.contains(#"id="cart-total">2.00 EUR"#) && cart.contains(#"id="to-checkout""#))
        let checkout = try await render(
            "checkout",
            [
                "lines": [line], "totals": totals, "idempotency_key": "k-1", "test_cards": true, "new_address_checked": true, "entered": [String: String](),
                "addresses": [["id": "a1", "text": "1 Main St, 10115 Berlin, DE", "checked": false]],
            ])
        #expect(checkout.contains(#"name="idempotency_key" value="k-1""#) && checkout.contains(#"name="expected_total_cents" value="200""#))
        #expect(checkout.contains(#"value="tok_visa" checked"#) && checkout.contains(#"id="card-declined""#) && checkout.contains("1 Main St"))
        let saved = try await render(
            "checkout", ["lines": [line], "totals": totals, "idempotency_key": "k-2", "entered": [String: String](), "saved_method": true])
        #expect(!saved.contains("tok_visa") && saved.contains(#"id="payment_method""#))
        let cards = try await render(
            "checkout", ["lines": [line], "totals": totals, "idempotency_key": "k-3", "entered": [String: String](), "stripe_cards": true])
        #expect(cards.contains(#"value="manual" id="pay-by-card" checked"#) && !cards.contains(#"id="payment_method""#) && !cards.contains("tok_visa"))
    }

    @Test("pay page: Stripe.js and the card form only when open for payment; only its policy allows Stripe; a secret key is no publishable key")
    func payPage() async throws {
        let open = try await render(
            "pay",
            [
                "number": "EMP-1", "total": "2.00 EUR", "order_url": "/orders/o1", "stripe_js": "https://js.stripe.com/v3/",
                "card_form": ["publishable_key": "pk_test_1", "action": "/orders/o1/pay"],
            ])
        #expect(open.contains(#"<script src="https://js.stripe.com/v3/"></script>"#) && open.contains(#"data-key="pk_test_1""#))
        #expect(open.contains(#"id="card-element""#) && open.contains(#"name="csrf" value="c5rf""#) && !open.contains("sk_"))
        let reserving = try await render("pay", ["number": "EMP-1", "total": "2.00 EUR", "order_url": "/orders/o1", "reserving": true, "refresh": 2])
        #expect(reserving.contains(#"<meta http-equiv="refresh" content="2">"#) && !reserving.contains("js.stripe.com") && !reserving.contains("pay-form"))

        var settings = try PaymentSettings.read(
            EnvironmentReader([
                "PAYMENT_PROVIDER": "stripe", "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_PUBLISHABLE_KEY": "pk_test_abc",
                "STRIPE_API_BASE": "http://127.0.0.1:8420", "STRIPE_JS_URL": "http://127.0.0.1:8420/js.stripe.com/v3/",
            ]))
        let policy = try #require(ShopCards(settings).payPagePolicy)
        #expect(policy.contains("script-src 'self' http://127.0.0.1:8420;") && policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe"))
        #expect(!ConsolePages.storefrontPolicy.contains("8420") && !ConsolePages.storefrontPolicy.contains("stripe"))
        settings.stripe?.publishableKey = nil
        #expect(ShopCards(settings).payPagePolicy == nil)
        #expect(ShopCards(PaymentSettings()).payPagePolicy == nil)
        #expect(throws: ConfigurationError.self) {
            try PaymentSettings.read(
                EnvironmentReader(["PAYMENT_PROVIDER": "stripe", "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_PUBLISHABLE_KEY": "sk_test_x"]))
        }
        #expect(throws: ConfigurationError.self) {
            try PaymentSettings.read(
                EnvironmentReader(["PAYMENT_PROVIDER": "stripe", "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_JS_URL": "javascript:alert(1)"]))
        }
    }

    @Test("order page: live while unsettled, with a cancel button only while allowed")
    func order() async throws {
        let pending = try await render(
            "order", ["id": "o1", "number": "EMP-1", "status": "AWAITING_PAYMENT", "status_text": "waiting", "can_cancel": true, "items": [[String: Any]]()])
        #expect(pending.contains(#"data-live-stream="/orders/o1/events""#) && !pending.contains("data-settled") && pending.contains(#"id="cancel-order""#))
        let done = try await render("order", ["id": "o1", "number": "EMP-1", "status": "CONFIRMED", "settled": true, "items": [[String: Any]]()])
        #expect(done.contains(#"data-settled="true""#) && !done.contains(#"id="cancel-order""#))
        #expect(try await render("orders", ["orders": [[String: Any]](), "empty": true]).contains("No orders yet."))
    }

    @Test("clean product URLs: a slug from the name plus the id; a bare id or an old slug is sent on to it")
    func productURLs() {
        #expect(ShopURLs.slug("Café Crème, 250 g") == "cafe-creme-250-g")
        #expect(ShopURLs.slug("  *** ") == "product")
        #expect(ShopURLs.slug(String(repeating: "word ", count: 40)).count <= ShopURLs.maxSlugLength)
        #expect(!ShopURLs.slug(String(repeating: "word ", count: 40)).hasSuffix("-"))
        let id = UUID()
        #expect(ShopURLs.product(id, name: "Fountain Pen") == "/products/fountain-pen-\(id.uuidString.lowercased())")
        #expect(ShopURLs.productId("fountain-pen-\(id.uuidString.lowercased())") == id)
        #expect(ShopURLs.productId(id.uuidString.lowercased()) == id)
        #expect(ShopURLs.productId("pen\(id.uuidString)") == nil)
        #expect(ShopURLs.productId("../../etc/passwd") == nil)
        #expect(ShopCatalogPages.summary(String(repeating: "long words ", count: 40)).count <= 160)
        #expect(ShopSitemap.escape("/search?a=1&b=<2>") == "/search?a=1&amp;b=&lt;2&gt;")
    }

    @Test("a product page has its title, description, canonical and sharing tags; the sitemap lists products on sale; robots.txt names it")
    func searchEngines() async throws {
        try await TestEnvironment.withMigratedDatabase { database in
            let pool = PostgresPool(configuration: database, maxConnections: 1)
            let (onSale, withdrawn) = (UUID(), UUID())
            for (id, sku, active) in [(onSale, "SEO-1", true), (withdrawn, "SEO-2", false)] {
                _ = try await pool.query(
                    """
                    INSERT INTO products (id, sku, name, description, price_cents, currency, stock, is_active, images)
                    VALUES ($1, $2, 'Café Crème & Co', 'Roasted "slowly".\nSecond line.', 1250, 'EUR', 5, $3, ARRAY['https://img.example.com/cafe.jpg'])
                    """, [id, sku, active])
            }
            var config = try apiTestConfiguration()
            config.postgres = database
            config.storefrontPublicURL = URL(string: "https://shop.example.com")
            let app = try await buildApplication(configuration: config)
            let page = "/products/cafe-creme-co-\(onSale.uuidString.lowercased())"
            try await app.test(.live) { client in
                for old in ["/products/\(onSale.uuidString.lowercased())?added=1", "/products/old-name-\(onSale.uuidString.lowercased())?added=1"] {
                    try await client.execute(uri: old, method: .get) { response in
                        #expect(response.status == .movedPermanently)
                        #expect(response.headers[.location] == page + "?added=1")
                    }
                }
                try await client.execute(uri: page, method: .get) { response in
                    let html = String(buffer: response.body)
                    #expect(response.status == .ok)
                    #expect(html.contains("<title>Café Crème &amp; Co · Emporium</title>"))
                    #expect(html.contains(#"<meta name="description" content="Roasted &quot;slowly&quot;. Second line.">"#))
                    #expect(html.contains(#"<link rel="canonical" href="https://shop.example.com\#(page)">"#))
                    #expect(html.contains(#"<meta property="og:image" content="https://img.example.com/cafe.jpg">"#))
                }
                for missing in ["/products/cafe-\(withdrawn.uuidString.lowercased())", "/products/not-a-product", "/products/\(UUID().uuidString)"] {
                    try await client.execute(uri: missing, method: .get) { response in #expect(response.status == .notFound, "\(missing)") }
                }
                try await client.execute(uri: "/sitemap.xml", method: .get) { response in
                    let xml = String(buffer: response.body)
                    #expect(response.status == .ok && response.headers[.contentType]?.hasPrefix("application/xml") == true)
                    #expect(xml.contains("<loc>https://shop.example.com\(page)</loc><lastmod>") && xml.contains("<loc>https://shop.example.com/</loc>"))
                    #expect(!xml.contains(withdrawn.uuidString.lowercased()))
                }
                try await client.execute(uri: "/robots.txt", method: .get) { response in
                    let text = String(buffer: response.body)
                    #expect(text.contains("Disallow: /checkout") && text.contains("Sitemap: https://shop.example.com/sitemap.xml"))
                }
            }
        }
    }

    @Test("the sitemap is read once for many crawlers and within its lifetime, again once it has aged, and a failed read is not kept")
    func sitemapSnapshots() async throws {
        actor Reads {
            var count = 0
            func add() { count += 1 }
        }
        struct DatabaseDown: Error {}
        let entries = [SitemapSnapshots.Entry(path: "/", modified: nil), SitemapSnapshots.Entry(path: "/products/a-1", modified: "2026-12-01")]

        let reads = Reads()
        let lasting = SitemapSnapshots(lifetime: .seconds(3600))
        await #expect(throws: DatabaseDown.self) {
            _ = try await lasting.entries {
                await reads.add()
                throw DatabaseDown()
            }
        }
        let answers = try await withThrowingTaskGroup(of: [SitemapSnapshots.Entry].self) { group in
            for _ in 0..<20 {
                group.addTask {
                    try await lasting.entries {
                        await reads.add()
                        return entries
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.count == 20 && answers.allSatisfy { $0 == entries })
        #expect(await reads.count == 2, "one failed read, then one read for twenty callers")

        let aging = SitemapSnapshots(lifetime: .milliseconds(50))
        let agingReads = Reads()
        let read: @Sendable () async throws -> [SitemapSnapshots.Entry] = {
            await agingReads.add()
            return entries
        }
        _ = try await aging.entries(read: read)
        let readAgain = await TestEnvironment.eventually(timeout: .seconds(10)) {
            let answer = try? await aging.entries(read: read)
            let count = await agingReads.count
            return answer == entries && count == 2
        }
        #expect(readAgain, "an aged snapshot was not read again")
    }

    @Test("only a path of the shop is a place to go after sign-in")
    func nextIsLocal() {
        #expect(StorefrontController.safeNext("/products/x") == "/products/x")
        #expect(StorefrontController.safeNext("//evil.example") == nil)
        #expect(StorefrontController.safeNext("https://evil.example") == nil)
        #expect(StorefrontController.safeNext("/admin") == nil)
        #expect(StorefrontController.safeNext(nil) == nil)
    }

    @Test("signed out: the shop's pages are served with its CSP; the cart sends to sign-in; a form without its token is refused")
    func withoutSession() async throws {
        let app = try await buildApplication(configuration: try apiTestConfiguration())
        try await app.test(.live) { client in
            try await client.execute(uri: "/signin", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentSecurityPolicy] == ConsolePages.storefrontPolicy)
                let cookie = try #require(response.headers[.setCookie])
                #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"))
            }
            try await client.execute(uri: "/cart", method: .get) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/signin?next=%2Fcart")
            }
            try await client.execute(
                uri: "/signin", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "email=a%40b.c&password=x&csrf=abc")
            ) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/shop/static/shop.css", method: .get) { response in #expect(response.status == .ok) }
            // A browser at an address the shop does not have gets the shop's page; API clients
            // and the API's paths keep the JSON problem.
            try await client.execute(uri: "/no-such-page", method: .get, headers: [.accept: "text/html,application/xhtml+xml"]) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType]?.hasPrefix("text/html") == true)
                #expect(String(buffer: response.body).contains("Back to the shop"))
            }
            try await client.execute(uri: "/no-such-page", method: .get, headers: [.accept: "application/json"]) { response in
                #expect(response.status == .notFound && response.headers[.contentType]?.contains("json") == true)
            }
            try await client.execute(uri: "/api/v1/no-such-thing", method: .get, headers: [.accept: "text/html"]) { response in
                #expect(response.status == .notFound && response.headers[.contentType]?.contains("json") == true)
            }
            try await client.execute(uri: "/checkout", method: .delete, headers: [.accept: "text/html"]) { response in
                #expect(response.status == .methodNotAllowed)
            }
        }
    }
}
