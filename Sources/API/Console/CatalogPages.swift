import Domain
import Foundation
import Hummingbird
import Store

/// Catalog: products (list and search, create, edit at the version read, stock, activate or
/// deactivate, categories, images by URL) and categories as a tree. A SELLER sees and edits
/// only their own products; categories are ADMIN's.
struct CatalogPages: Sendable {
    let controller: ConsoleController
    private var dependencies: ConsoleDependencies { controller.dependencies }
    static let pageSize = 25

    func register(on router: Router<AppRequestContext>) {
        router.get("admin/products") { request, context in try await controller.guarded(request, context, staff: true, handler: list) }
        router.get("admin/products/new") { request, context in try await controller.guarded(request, context, staff: true, handler: newForm) }
        router.post("admin/products") { request, context in try await controller.guarded(request, context, staff: true, handler: create) }
        router.get("admin/products/:id") { request, context in try await controller.guarded(request, context, staff: true, handler: editForm) }
        router.post("admin/products/:id") { request, context in try await controller.guarded(request, context, staff: true, handler: update) }
        router.get("admin/categories") { request, context in try await controller.guarded(request, context, handler: categories) }
        router.post("admin/categories") { request, context in try await controller.guarded(request, context, handler: createCategory) }
    }

    /// A seller's products only; every product for an admin.
    private func seller(_ viewer: SessionViewer) -> UUID? { viewer.isAdmin ? nil : viewer.userId }

    private func list(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let query = request.uri.queryParameters
        let text = query.get("q").map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty || $0.count > 200 ? nil : $0 }
        let page = ListPage(query, size: Self.pageSize)
        let found = try await ConsoleQueries().products(sellerId: seller(viewer), text: text, size: page.size, offset: page.offset, on: dependencies.pool)
        var values = controller.base(viewer, title: "Products", section: "catalog")
        values["products"] = found.products.map {
            [
                "id": $0.id.uuidString.lowercased(), "name": $0.name, "sku": $0.sku, "price": ConsoleFormat.money($0.priceCents, $0.currency),
                "stock": $0.stock, "active": $0.isActive, "version": $0.version,
            ] as [String: Any]
        }
        values["empty"] = found.products.isEmpty
        values["total"] = found.total
        values["q"] = text ?? ""
        let keep = text.map { "q=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")&" } ?? ""
        values.addPager(page.pagerValues(path: "/admin/products", keeping: keep, total: found.total))
        return try controller.pages.page("products", values)
    }

    private func formValues(_ viewer: SessionViewer, product: CatalogStore.Product?, input: [String: String] = [:], problem: String? = nil) async throws
        -> [String: Any]
    {
        var values = controller.base(viewer, title: product.map { "Edit \($0.name)" } ?? "New product", section: "catalog")
        let categories = try await CatalogStore().categories(on: dependencies.pool)
        let chosen = Set(product?.categoryIds ?? [])
        values["categories"] = categories.map { ["id": $0.id.uuidString.lowercased(), "name": $0.name, "checked": chosen.contains($0.id)] as [String: Any] }
        if let product {
            values["product"] =
                [
                    "id": product.id.uuidString.lowercased(), "name": input["name"] ?? product.name, "description": input["description"] ?? product.description,
                    "sku": input["sku"] ?? product.sku,
                    "price": input["price"] ?? ConsoleFormat.money(product.priceCents, "").trimmingCharacters(in: .whitespaces),
                    "currency": input["currency"] ?? product.currency, "stock": input["stock"] ?? String(product.stock), "version": product.version,
                    "active": product.isActive, "images": input["images"] ?? product.images.joined(separator: "\n"),
                ] as [String: Any]
            values["action"] = "/admin/products/\(product.id.uuidString.lowercased())"
        } else {
            values["product"] =
                [
                    "name": input["name"] ?? "", "description": input["description"] ?? "", "sku": input["sku"] ?? "", "price": input["price"] ?? "",
                    "currency": input["currency"] ?? "EUR", "stock": input["stock"] ?? "0", "active": true, "images": input["images"] ?? "",
                ] as [String: Any]
            values["action"] = "/admin/products"
            values["creating"] = true
        }
        values["problem"] = problem as Any
        return values
    }

    private func newForm(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        try controller.pages.page("product-form", try await formValues(viewer, product: nil))
    }

    private func editForm(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let id = try context.parameters.requireUUID("id", "product")
        guard let product = try await ConsoleQueries().product(id, sellerId: seller(viewer), on: dependencies.pool) else { throw APIError.notFound("product") }
        var values = try await formValues(viewer, product: product)
        let audit = try await AuditStore().entries(objectType: "product", objectId: id.uuidString.lowercased(), on: dependencies.pool)
        values["audit"] = audit.map { ["actor": $0.actorEmail, "action": $0.action, "after": $0.after ?? "", "at": ConsoleFormat.date($0.at)] }
        values["has_audit"] = !audit.isEmpty
        return try controller.pages.page("product-form", values)
    }

    /// The form as the API's product body; a field that is not a number is a 400 naming it.
    private func input(_ form: FormFields, version: Int?) throws -> ProductsController.ProductInput {
        guard let priceText = form["price"], let price = OrderPages.cents(priceText) else {
            throw APIError.invalid([("price", "must be an amount such as 12.50")])
        }
        guard let stock = Int(form["stock"] ?? "") else { throw APIError.invalid([("stock", "must be a whole number")]) }
        let images = (form["images"] ?? "").split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let categories = try form.all("category").map { text -> UUID in
            guard let id = UUID(uuidString: text) else { throw APIError.invalid([("category", "unknown category")]) }
            return id
        }
        return ProductsController.ProductInput(
            name: form["name"] ?? "", description: form["description"] ?? "", sku: form["sku"] ?? "", priceCents: price,
            currency: (form["currency"] ?? "").uppercased(), stock: stock, version: version, images: images, categoryIds: categories,
            isActive: form["active"] == "on")
    }

    private func raw(_ form: FormFields) -> [String: String] {
        Dictionary(
            form.values.filter { ["name", "description", "sku", "price", "currency", "stock", "images"].contains($0.0) }, uniquingKeysWith: { a, _ in a })
    }

    private func create(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        do {
            let product = try await dependencies.products.create(try input(form, version: nil), by: Identity(userId: viewer.userId, role: viewer.role))
            return ConsolePages.redirect("/admin/products/\(product.id.uuidString.lowercased())")
        } catch let error as APIError where error.status == .badRequest || error.status == .conflict {
            return try controller.pages.page(
                "product-form", try await formValues(viewer, product: nil, input: raw(form), problem: Self.describe(error)), status: error.status)
        }
    }

    private func update(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let id = try context.parameters.requireUUID("id", "product")
        guard let version = Int(form["version"] ?? "") else { throw APIError.invalid([("version", "missing; reload the product")]) }
        do {
            _ = try await dependencies.products.update(
                id, try input(form, version: version), ifMatch: nil, by: Identity(userId: viewer.userId, role: viewer.role))
            return ConsolePages.redirect("/admin/products/\(id.uuidString.lowercased())")
        } catch let error as APIError where error.status == .badRequest || error.status == .conflict {
            guard let product = try await ConsoleQueries().product(id, sellerId: seller(viewer), on: dependencies.pool) else {
                throw APIError.notFound("product")
            }
            return try controller.pages.page(
                "product-form", try await formValues(viewer, product: product, input: raw(form), problem: Self.describe(error)), status: error.status)
        }
    }

    /// An API error as one sentence for the form.
    static func describe(_ error: APIError) -> String {
        let fields = error.errors.map { "\($0.field): \($0.message)" }.joined(separator: "; ")
        return fields.isEmpty ? error.detail : "\(error.detail): \(fields)"
    }

    // MARK: Categories

    private func categories(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        try controller.pages.page("categories", try await categoryValues(viewer, problem: nil))
    }

    private func categoryValues(_ viewer: SessionViewer, problem: String?) async throws -> [String: Any] {
        let all = try await CatalogStore().categories(on: dependencies.pool)
        let children = Dictionary(grouping: all, by: \.parentId)
        /// Depth-first, so the list reads as a tree (depth bounds the recursion on bad data).
        func tree(_ parent: UUID?, depth: Int) -> [[String: Any]] {
            guard depth < 20 else { return [] }
            return (children[parent] ?? []).flatMap { category -> [[String: Any]] in
                [
                    [
                        "id": category.id.uuidString.lowercased(), "name": category.name, "slug": category.slug, "depth": depth,
                        "indent": String(repeating: "— ", count: depth),
                    ]
                ]
                    + tree(category.id, depth: depth + 1)
            }
        }
        var values = controller.base(viewer, title: "Categories", section: "catalog")
        values["tree"] = tree(nil, depth: 0)
        values["empty"] = all.isEmpty
        values["parents"] = all.map { ["id": $0.id.uuidString.lowercased(), "name": $0.name] }
        values["problem"] = problem as Any
        return values
    }

    private func createCategory(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        do {
            let parent = try form["parent"].map { text -> UUID in
                guard let id = UUID(uuidString: text) else { throw APIError.invalid([("parent", "unknown category")]) }
                return id
            }
            _ = try await dependencies.categories.create(
                CategoriesController.Input(name: form["name"] ?? "", slug: form["slug"] ?? "", parentId: parent),
                by: Identity(userId: viewer.userId, role: viewer.role))
            return ConsolePages.redirect("/admin/categories")
        } catch let error as APIError where error.status == .badRequest || error.status == .conflict {
            return try controller.pages.page("categories", try await categoryValues(viewer, problem: Self.describe(error)), status: error.status)
        }
    }
}
