import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Postgres
import Store

/// The catalog: public reads; ADMIN and SELLER create; ADMIN or the owning SELLER update.
struct ProductsController: Sendable {
    let pool: PostgresPool
    private let catalog = CatalogStore()
    /// The highest price a product may have, in cents (and the highest price filter).
    static let maxPriceCents = 10_000_000_000

    struct ProductInput: Decodable {
        let name: String
        let description: String?
        let sku: String
        let priceCents: Int
        let currency: String
        let stock: Int
        /// The version the client read; required on updates (or `If-Match`).
        let version: Int?
        /// Image URLs (http or https), at most 10.
        let images: [String]?
        /// Categories the product is listed in.
        let categoryIds: [UUID]?
        /// Whether it is listed at all (default true).
        let isActive: Bool?

        func validate() throws {
            var problems: [(String, String)] = []
            if !FieldRules.isText(name, max: 200) { problems.append(("name", "must be 1 to 200 characters, not only spaces")) }
            if !FieldRules.isFreeText(description, max: 2_000) { problems.append(("description", "must be at most 2000 characters")) }
            if !FieldRules.isToken(sku, extra: "._-", max: 64) { problems.append(("sku", "must be 1 to 64 letters, digits, dots, dashes or underscores")) }
            if !(0...ProductsController.maxPriceCents).contains(priceCents) {
                problems.append(("price_cents", "must be from 0 to \(ProductsController.maxPriceCents)"))
            }
            if !Money.isValidCurrency(currency) { problems.append(("currency", "must be an ISO 4217 code such as EUR")) }
            if stock < 0 || stock > 1_000_000_000 { problems.append(("stock", "must be from 0 to 1000000000")) }
            let urls = images ?? []
            if urls.count > 10 || !urls.allSatisfy(FieldRules.isHTTPURL) {
                problems.append(("images", "at most 10 http(s) URLs"))
            }
            if (categoryIds?.count ?? 0) > 20 { problems.append(("category_ids", "at most 20 categories")) }
            guard problems.isEmpty else { throw APIError.invalid(problems) }
        }

        /// What the store writes.
        var fields: CatalogStore.ProductFields {
            CatalogStore.ProductFields(
                name: name, description: description ?? "", sku: sku, priceCents: priceCents, currency: currency, stock: stock,
                images: images, isActive: isActive)
        }
    }

    func register(public group: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AppRequestContext>) {
        group.get("products") { request, _ in try await list(request) }
        group.get("products/:id") { _, context in
            let product = try await get(context.parameters.requireUUID("id", "product"), viewer: context.identity)
            return EditedResponse(headers: [.eTag: "\"\(product.version)\""], response: product)
        }
        authenticated.post("products") { request, context in try await create(request, context) }
        authenticated.put("products/:id") { request, context in try await update(request, context) }
    }

    /// Search and filters: `q` (full text, ranked), `category` (id or slug, with its
    /// subcategories), `min_price`, `max_price`, `in_stock`, `sort`.
    private func list(_ request: Request) async throws -> PageBody<CatalogStore.Product> {
        let page = try Page(request)
        func int(_ name: String) throws -> Int? {
            guard let text = try request.singleQueryValue(name) else { return nil }
            guard let value = Int(text), (0...Self.maxPriceCents).contains(value) else {
                throw APIError.badRequest(
                    "\(name) must be a whole number of cents from 0 to \(Self.maxPriceCents)",
                    errors: [.init(field: name, message: "must be an integer from 0 to \(Self.maxPriceCents)")])
            }
            return value
        }
        let rawText = try request.singleQueryValue("q")
        guard FieldRules.length(rawText ?? "") <= 200 else {
            throw APIError.badRequest("q is at most 200 characters", errors: [.init(field: "q", message: "at most 200 characters")])
        }
        let text = rawText.flatMap { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : $0 }
        let minPrice = try int("min_price"), maxPrice = try int("max_price")
        let inStock: Bool?
        switch try request.singleQueryValue("in_stock") {
        case nil: inStock = nil
        case "true": inStock = true
        case "false": inStock = false
        default: throw APIError.badRequest("in_stock must be true or false", errors: [.init(field: "in_stock", message: "must be true or false")])
        }
        let category = try request.singleQueryValue("category").flatMap { $0.isEmpty ? nil : $0 }
        let sort = try request.singleQueryValue("sort") ?? (text == nil ? "newest" : "relevance")
        guard CatalogStore.sorts[sort] != nil else {
            throw APIError.badRequest(
                "sort must be one of \(CatalogStore.sorts.keys.sorted().joined(separator: ", "))", errors: [.init(field: "sort", message: "unknown sort")])
        }
        let search = CatalogStore.Search(text: text, minPrice: minPrice, maxPrice: maxPrice, inStock: inStock, category: category, sort: sort)
        let found = try await catalog.search(search, size: page.size, offset: page.offset, on: pool)
        return PageBody(items: found.products, page: page.number, pageSize: page.size, total: found.total)
    }

    /// An active product; an inactive one only for an admin or the seller who owns it.
    private func get(_ id: UUID, viewer: Identity?) async throws -> CatalogStore.Product {
        guard let product = try await catalog.product(id, viewer: viewer.catalogViewer, on: pool) else { throw APIError.notFound("product") }
        return product
    }

    private func create(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<CatalogStore.Product> {
        let (input, _) = try await request.decodeJSON(ProductInput.self, context: context)
        let product = try await create(input, by: try context.requireIdentity())
        return EditedResponse(status: .created, headers: [.location: "/api/v1/products/\(product.id.uuidString.lowercased())"], response: product)
    }

    /// Creates a product for an ADMIN or a SELLER (then theirs): the API's and the console's path.
    func create(_ input: ProductInput, by identity: Identity) async throws -> CatalogStore.Product {
        guard identity.role.isAdmin || identity.role == .seller else { throw APIError.forbidden("only sellers and admins manage products") }
        try input.validate()
        let id = UUID()
        return try await storing(sku: input.sku) {
            try await pool.withTransaction { db in
                let product = try await catalog.create(
                    id, input.fields, sellerId: identity.role == .seller ? identity.userId : nil, categoryIds: input.categoryIds, on: db)
                try await AuditStore().record(
                    actor: identity.userId, action: "product.create", objectType: "product", objectId: id.uuidString.lowercased(), before: nil,
                    after: #"{"sku":\#(Self.jsonString(input.sku)),"price_cents":\#(input.priceCents),"stock":\#(input.stock)}"#, on: db)
                return product
            }
        }
    }

    private func update(_ request: Request, _ context: AppRequestContext) async throws -> CatalogStore.Product {
        let id = try context.parameters.requireUUID("id", "product")
        let (input, _) = try await request.decodeJSON(ProductInput.self, context: context)
        // Optimistic locking: the update names the version it was based on, by `If-Match`
        // (412 when stale) or a `version` field (409 when stale).
        let ifMatch = request.headers[.ifMatch].flatMap { Int($0.trimmingCharacters(in: CharacterSet(charactersIn: "\" W/"))) }
        return try await update(id, input, ifMatch: ifMatch, by: try context.requireIdentity())
    }

    /// Replaces a product at the version the caller read (`ifMatch`, else `input.version`):
    /// the API's and the console's path. A SELLER may only touch their own products.
    func update(_ id: UUID, _ input: ProductInput, ifMatch: Int?, by identity: Identity) async throws -> CatalogStore.Product {
        guard identity.role.isAdmin || identity.role == .seller else { throw APIError.forbidden("only sellers and admins manage products") }
        try input.validate()
        guard let expected = ifMatch ?? input.version else {
            throw APIError(status: .preconditionRequired, detail: "send the product's version (the `version` field or an If-Match header) with an update")
        }
        // A seller may only touch its own products; others' look absent.
        let updated = try await storing(sku: input.sku) {
            try await pool.withTransaction { db -> CatalogStore.Product? in
                let product = try await catalog.replace(
                    id, input.fields, categoryIds: input.categoryIds, version: expected, byAdmin: identity.role.isAdmin,
                    userId: identity.userId, on: db)
                if let product {
                    try await AuditStore().record(
                        actor: identity.userId, action: "product.update", objectType: "product", objectId: id.uuidString.lowercased(),
                        before: #"{"version":\#(expected)}"#,
                        after:
                            #"{"version":\#(product.version),"price_cents":\#(product.priceCents),"stock":\#(product.stock),"is_active":\#(product.isActive)}"#,
                        on: db)
                }
                return product
            }
        }
        guard let updated else {
            guard let current = try await catalog.version(of: id, byAdmin: identity.role.isAdmin, userId: identity.userId, on: pool) else {
                throw APIError.notFound("product")
            }
            let detail = "the product changed since version \(expected) (now \(current)); read it again and reapply the change"
            throw ifMatch != nil ? APIError(status: .preconditionFailed, detail: detail) : APIError.conflict(detail)
        }
        return updated
    }

    /// `text` as a JSON string literal (for audit entries).
    static func jsonString(_ text: String) -> String {
        (try? String(decoding: JSONEncoder().encode(text), as: UTF8.self)) ?? "\"\""
    }

    /// Runs a write, turning a taken SKU and an unknown category into 409s naming them.
    private func storing<T>(sku: String, _ write: () async throws -> T) async throws -> T {
        do {
            return try await write()
        } catch let error as PostgresError where error.isUniqueViolation {
            throw APIError.conflict("a product with SKU \(sku) already exists")
        } catch is CatalogStore.UnknownCategory {
            // 409, not 404: the path's product is fine; the body names a category that is not there.
            throw APIError(
                status: .conflict, detail: "a category in category_ids does not exist", errors: [.init(field: "category_ids", message: "unknown category")])
        }
    }
}

extension Optional where Wrapped == Identity {
    /// The caller as the catalog sees them: an admin, a signed-in user, or no one.
    var catalogViewer: CatalogStore.Viewer {
        map { CatalogStore.Viewer(userId: $0.userId, isAdmin: $0.role.isAdmin) } ?? .anonymous
    }
}
