import Domain
import Foundation
import Hummingbird
import Store

/// Home, search and product pages: the catalog as the API serves it (full-text ranking,
/// filters, sorting, pages), with ratings and reviews; a customer whose order of a product was
/// delivered writes a review on its page.
struct ShopCatalogPages: Sendable {
    let controller: StorefrontController
    private var shop: StorefrontDependencies { controller.shop }
    static let pageSize = 12
    private let catalog = CatalogStore()

    func register(on router: Router<AppRequestContext>) {
        router.get("/") { request, context in try await controller.guarded(request, context, handler: home) }
        router.get("search") { request, context in try await controller.guarded(request, context, handler: search) }
        router.get("products/:id") { request, context in try await controller.guarded(request, context, handler: product) }
        router.post("products/:id/reviews") { request, context in try await controller.guarded(request, context, signedIn: true, handler: review) }
    }

    /// A product as a card in a grid.
    static func card(_ product: CatalogStore.Product) -> [String: Any] {
        [
            "id": product.id.uuidString.lowercased(), "url": ShopURLs.product(product.id, name: product.name), "name": product.name,
            "price": ConsoleFormat.money(product.priceCents, product.currency),
            "image": product.images.first ?? "", "in_stock": product.stock > 0, "rating": product.ratingAverage.map { String(format: "%.1f", $0) } ?? "",
            "rating_count": product.ratingCount,
        ]
    }

    private func home(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        var values = await controller.base(viewer, title: "Emporium", request: request)
        values["description"] = "Browse, search and order from the shop's catalog; follow each order live from payment to delivery."
        values["canonical"] = controller.publicBase(request) + "/"
        let categories = try await catalog.categories(on: shop.pool)
        values["categories"] = categories.filter { $0.parentId == nil }.map { ["name": $0.name, "slug": $0.slug] }
        let featured = try await shop.pool.withConnection { try await catalog.newestInStock(limit: 8, on: $0) }
        values["products"] = featured.map(Self.card)
        values["empty"] = featured.isEmpty
        return try controller.pages.page("home", values)
    }

    private func search(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        let query = request.uri.queryParameters
        func text(_ name: String) -> String? {
            query.get(name).map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty || $0.count > 200 ? nil : $0 }
        }
        var problems: [String] = []
        func price(_ name: String, _ label: String) -> Int? {
            guard let raw = text(name) else { return nil }
            guard let cents = OrderPages.cents(raw) else {
                problems.append("\(label) must be an amount such as 12.50")
                return nil
            }
            return cents
        }
        let sort = text("sort").flatMap { CatalogStore.sorts[$0] == nil ? nil : $0 } ?? (text("q") == nil ? "newest" : "relevance")
        let search = CatalogStore.Search(
            text: text("q"), minPrice: price("min", "The lowest price"), maxPrice: price("max", "The highest price"),
            inStock: query.get("in_stock") == "on" ? true : nil, category: text("category"), sort: sort)
        let page = ListPage(query, size: Self.pageSize, deepest: 1_000)
        let found = try await catalog.search(search, size: page.size, offset: page.offset, on: shop.pool)
        var values = await controller.base(viewer, title: search.text.map { "“\($0)”" } ?? "All products", request: request)
        values["description"] =
            search.text.map { "Products matching “\($0)”: \(found.total) found." } ?? "All products of the shop: \(found.total), with prices and stock."
        values["products"] = found.products.map(Self.card)
        values["empty"] = found.products.isEmpty
        values["total"] = found.total
        values["problems"] = problems
        values["min"] = text("min") ?? ""
        values["max"] = text("max") ?? ""
        values["in_stock"] = search.inStock == true
        let labels = [
            "relevance": "Best match", "newest": "Newest", "price_asc": "Price, low to high", "price_desc": "Price, high to low", "rating": "Rating",
            "name": "Name",
        ]
        values["sorts"] = ["relevance", "newest", "price_asc", "price_desc", "rating", "name"].map {
            ["value": $0, "label": labels[$0]!, "selected": $0 == sort]
        }
        let categories = try await catalog.categories(on: shop.pool)
        values["categories"] = categories.map { ["slug": $0.slug, "name": $0.name, "selected": $0.slug == search.category] }
        values.addPager(page.pagerValues(path: "/search", keeping: ListPage.otherParameters(of: request.uri.query), total: found.total))
        return try controller.pages.page("search", values)
    }

    private func product(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let segment = context.parameters.get("id"), let id = ShopURLs.productId(segment) else { throw APIError.notFound("product") }
        guard let product = try await catalog.product(id, viewer: CatalogStore.Viewer(userId: viewer?.userId, isAdmin: false), on: shop.pool), product.isActive
        else { throw APIError.notFound("product") }
        // One address per product: a bare id, or an old name's slug, is sent on to it.
        let path = ShopURLs.product(id, name: product.name)
        guard request.uri.path == path else {
            return Response(status: .movedPermanently, headers: [.location: path + (request.uri.query.map { "?" + $0 } ?? "")])
        }
        var values = await controller.base(viewer, title: product.name, request: request)
        values["description"] = Self.summary(product.description.isEmpty ? product.name : product.description)
        values["canonical"] = controller.publicBase(request) + path
        values["og_type"] = "product"
        values["og_image"] = product.images.first { $0.hasPrefix("https://") } as Any
        values["product"] = Self.card(product).merging([
            "description": product.description, "images": product.images.map { ["url": $0] }, "stock": product.stock, "sku": product.sku,
            "max_quantity": min(product.stock, CartController.maxQuantity),
        ]) { _, new in new }
        let reviews = try await catalog.reviews(of: id, size: 20, offset: 0, on: shop.pool)
        values["reviews"] = reviews.reviews.map {
            [
                "author": $0.authorName, "rating": $0.rating, "stars": String(repeating: "★", count: $0.rating) + String(repeating: "☆", count: 5 - $0.rating),
                "body": $0.body, "date": ConsoleFormat.date($0.createdAt),
            ] as [String: Any]
        }
        values["review_count"] = reviews.total
        if let viewer {
            let (delivered, reviewed) = try await shop.pool.withConnection { db in
                (try await OrderStore().hasDelivered(id, to: viewer.userId, on: db), reviews.reviews.contains { $0.userId == viewer.userId })
            }
            values["may_review"] = delivered && !reviewed
        }
        values["notice"] = request.uri.queryParameters.get("added").map { _ in "Added to your cart." } as Any
        return try controller.pages.page("product", values)
    }

    private func review(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        let id = try context.parameters.requireUUID("id", "product")
        guard let rating = Int(form["rating"] ?? "") else { throw APIError.invalid([("rating", "choose 1 to 5 stars")]) }
        _ = try await shop.reviews.create(.init(rating: rating, body: form["body"]), productId: id, userId: viewer.userId)
        return ConsolePages.redirect("/products/\(id.uuidString.lowercased())#reviews")
    }

    /// `text` cut to what search results show (about 160 characters), at a word.
    static func summary(_ text: String, limit: Int = 160) -> String {
        let flat = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        guard flat.count > limit else { return flat }
        let cut = flat.prefix(limit - 1)
        return (cut.lastIndex(of: " ").map { String(cut[..<$0]) } ?? String(cut)) + "…"
    }
}
