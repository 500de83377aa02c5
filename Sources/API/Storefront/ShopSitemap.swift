import Foundation
import Hummingbird
import Store

/// What search engines read: `/sitemap.xml` (the home page, each category's listing and every
/// product on sale, at their clean URLs, with the date each product last changed) and
/// `/robots.txt` (which keeps crawlers out of the customer's own pages and names the sitemap).
struct ShopSitemap: Sendable {
    let controller: StorefrontController
    private var shop: StorefrontDependencies { controller.shop }
    /// A sitemap file holds at most 50,000 URLs (sitemaps.org); the home page and the
    /// categories take some of them.
    static let maxProducts = 45_000

    func register(on router: Router<AppRequestContext>) {
        router.get("sitemap.xml") { request, _ in try await sitemap(request) }
        router.get("robots.txt") { request, _ in robots(request) }
    }

    private func sitemap(_ request: Request) async throws -> Response {
        let base = controller.publicBase(request)
        let catalog = CatalogStore()
        let categories = try await catalog.categories(on: shop.pool)
        let products = try await catalog.sitemapEntries(limit: Self.maxProducts, on: shop.pool)
        let day = ISO8601DateFormatter()
        day.formatOptions = [.withFullDate]
        var xml = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n" + #"<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">"# + "\n"
        func url(_ path: String, modified: Date? = nil) {
            xml += "<url><loc>\(Self.escape(base + path))</loc>" + (modified.map { "<lastmod>\(day.string(from: $0))</lastmod>" } ?? "") + "</url>\n"
        }
        url("/")
        for category in categories { url("/search?category=\(category.slug)") }
        for product in products { url(ShopURLs.product(product.id, name: product.name), modified: product.updatedAt) }
        xml += "</urlset>\n"
        return Response(
            status: .ok, headers: [.contentType: "application/xml; charset=utf-8", .cacheControl: "public, max-age=300"],
            body: .init(byteBuffer: ByteBuffer(string: xml)))
    }

    private func robots(_ request: Request) -> Response {
        let text = """
            User-agent: *
            Disallow: /cart
            Disallow: /checkout
            Disallow: /orders
            Disallow: /signin
            Disallow: /signup
            Disallow: /admin
            Disallow: /api/
            Sitemap: \(controller.publicBase(request))/sitemap.xml

            """
        return Response(
            status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "public, max-age=3600"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// `text` safe inside an XML element.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;").replacingOccurrences(of: "'", with: "&apos;")
    }
}
