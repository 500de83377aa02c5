import Foundation
import Hummingbird
import Postgres
import Store

/// What search engines read: `/sitemap.xml` (the home page, each category's listing and every
/// product on sale, at their clean URLs, with the date each product last changed) and
/// `/robots.txt` (which keeps crawlers out of the customer's own pages and names the sitemap).
struct ShopSitemap: Sendable {
    let controller: StorefrontController
    /// Shared by every request this registration serves.
    let snapshots = SitemapSnapshots()
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
        let entries = try await snapshots.entries { [pool = shop.pool] in try await Self.read(pool) }
        var xml = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n" + #"<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">"# + "\n"
        for entry in entries {
            xml += "<url><loc>\(Self.escape(base + entry.path))</loc>" + (entry.modified.map { "<lastmod>\($0)</lastmod>" } ?? "") + "</url>\n"
        }
        xml += "</urlset>\n"
        return Response(
            status: .ok, headers: [.contentType: "application/xml; charset=utf-8", .cacheControl: "public, max-age=300"],
            body: .init(byteBuffer: ByteBuffer(string: xml)))
    }

    /// The home page, each category's listing and every product on sale, newest change first.
    private static func read(_ pool: PostgresPool) async throws -> [SitemapSnapshots.Entry] {
        let catalog = CatalogStore()
        let categories = try await catalog.categories(on: pool)
        let products = try await catalog.sitemapEntries(limit: maxProducts, on: pool)
        let day = ISO8601DateFormatter()
        day.formatOptions = [.withFullDate]
        return [SitemapSnapshots.Entry(path: "/", modified: nil)]
            + categories.map { SitemapSnapshots.Entry(path: "/search?category=\($0.slug)", modified: nil) }
            + products.map { SitemapSnapshots.Entry(path: ShopURLs.product($0.id, name: $0.name), modified: day.string(from: $0.updatedAt)) }
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
