import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Postgres

/// The catalog: public reads; ADMIN and SELLER create; ADMIN or the owning SELLER update.
struct ProductsController: Sendable {
    let pool: PostgresPool
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
            if !(0...ProductsController.maxPriceCents).contains(priceCents) { problems.append(("price_cents", "must be from 0 to \(ProductsController.maxPriceCents)")) }
            if !Money.isValidCurrency(currency) { problems.append(("currency", "must be an ISO 4217 code such as EUR")) }
            if stock < 0 || stock > 1_000_000_000 { problems.append(("stock", "must be from 0 to 1000000000")) }
            let urls = images ?? []
            if urls.count > 10 || !urls.allSatisfy(FieldRules.isHTTPURL) {
                problems.append(("images", "at most 10 http(s) URLs"))
            }
            if (categoryIds?.count ?? 0) > 20 { problems.append(("category_ids", "at most 20 categories")) }
            guard problems.isEmpty else { throw APIError.invalid(problems) }
        }
    }

    struct ProductBody: ResponseEncodable, Sendable {
        let id: UUID
        let name: String
        let description: String
        let sku: String
        let priceCents: Int
        let currency: String
        let stock: Int
        let version: Int
        let sellerId: UUID?
        let images: [String]
        let isActive: Bool
        let categoryIds: [UUID]
        let ratingAverage: Double?
        let ratingCount: Int

        init(_ row: PostgresRow) throws {
            id = try row.decode(UUID.self, "id")
            name = try row.decode(String.self, "name")
            description = try row.decode(String.self, "description")
            sku = try row.decode(String.self, "sku")
            priceCents = try row.decode(Int.self, "price_cents")
            currency = try row.decode(String.self, "currency")
            stock = try row.decode(Int.self, "stock")
            version = try row.decode(Int.self, "version")
            sellerId = try row.decode(UUID?.self, "seller_id")
            images = try row.decode([String].self, "images")
            isActive = try row.decode(Bool.self, "is_active")
            categoryIds = try row.decode([UUID].self, "category_ids")
            ratingCount = try row.decode(Int.self, "rating_count")
            ratingAverage = ratingCount > 0 ? (Double(try row.decode(Int.self, "rating_sum")) / Double(ratingCount) * 100).rounded() / 100 : nil
        }
    }

    static let columns = """
        id, name, description, sku, price_cents, currency, stock, version, seller_id, images, is_active, rating_count, rating_sum,
        ARRAY(SELECT category_id FROM product_categories pc WHERE pc.product_id = products.id ORDER BY category_id) AS category_ids
        """

    /// Sort orders a client may ask for, mapped to fixed SQL (never user text).
    static let sorts: [String: String] = [
        "relevance": "rank DESC, created_at DESC, id",
        "price_asc": "price_cents ASC, id",
        "price_desc": "price_cents DESC, id",
        "newest": "created_at DESC, id",
        "name": "name ASC, id",
        "rating": "(CASE WHEN rating_count = 0 THEN 0 ELSE rating_sum::float8 / rating_count END) DESC, id",
    ]

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
    /// subcategories), `min_price`, `max_price`, `in_stock`, `sort`. Every filter is a fixed,
    /// parameterized clause that is off when its parameter is NULL; pages are stable because
    /// every sort ends with the id.
    private func list(_ request: Request) async throws -> PageBody<ProductBody> {
        let page = try Page(request)
        func int(_ name: String) throws -> Int? {
            guard let text = try request.singleQueryValue(name) else { return nil }
            guard let value = Int(text), (0...Self.maxPriceCents).contains(value) else {
                throw APIError.badRequest("\(name) must be a whole number of cents from 0 to \(Self.maxPriceCents)", errors: [.init(field: name, message: "must be an integer from 0 to \(Self.maxPriceCents)")])
            }
            return value
        }
        let rawText = try request.singleQueryValue("q")
        guard FieldRules.length(rawText ?? "") <= 200 else { throw APIError.badRequest("q is at most 200 characters", errors: [.init(field: "q", message: "at most 200 characters")]) }
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
        let sortName = try request.singleQueryValue("sort") ?? (text == nil ? "newest" : "relevance")
        guard let order = Self.sorts[sortName] else {
            throw APIError.badRequest("sort must be one of \(Self.sorts.keys.sorted().joined(separator: ", "))", errors: [.init(field: "sort", message: "unknown sort")])
        }
        let rows = try await pool.query(
            """
            WITH RECURSIVE wanted AS (
              SELECT id FROM categories WHERE $5::text IS NOT NULL AND (slug = $5 OR id::text = $5)
              UNION SELECT c.id FROM categories c JOIN wanted w ON c.parent_id = w.id
            ), matches AS (
              SELECT products.*, CASE WHEN $1::text IS NULL THEN 0 ELSE ts_rank(search, websearch_to_tsquery('english', $1)) END AS rank
              FROM products
              WHERE is_active
                AND ($1::text IS NULL OR search @@ websearch_to_tsquery('english', $1))
                AND ($2::int8 IS NULL OR price_cents >= $2)
                AND ($3::int8 IS NULL OR price_cents <= $3)
                AND ($4::bool IS NULL OR ($4 AND stock > 0) OR (NOT $4 AND stock = 0))
                AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM product_categories pc JOIN wanted w ON w.id = pc.category_id WHERE pc.product_id = products.id))
            )
            SELECT \(Self.columns), count(*) OVER () AS total FROM matches AS products
            ORDER BY \(order) LIMIT $6 OFFSET $7
            """,
            [text, minPrice, maxPrice, inStock, category, page.size, page.offset])
        return PageBody(items: try rows.map(ProductBody.init), page: page.number, pageSize: page.size,
                        total: try rows.first?.decode(Int.self, "total") ?? 0)
    }

    /// Replaces a product's categories; unknown category ids are refused.
    static func setCategories(_ productId: UUID, _ categoryIds: [UUID]?, on db: PostgresConnection) async throws {
        guard let categoryIds else { return }
        let unique = Array(Set(categoryIds))
        let known = try await db.query("SELECT count(*) AS n FROM categories WHERE id = ANY($1)", [unique])[0].decode(Int.self, "n")
        guard known == unique.count else {
            // 409, not 404: the path's product is fine; the body names a category that is not there.
            throw APIError(status: .conflict, detail: "a category in category_ids does not exist", errors: [.init(field: "category_ids", message: "unknown category")])
        }
        try await db.query("DELETE FROM product_categories WHERE product_id = $1", [productId])
        try await db.query("INSERT INTO product_categories (product_id, category_id) SELECT $1, unnest($2::uuid[])", [productId, unique])
    }

    /// An active product; an inactive one only for an admin or the seller who owns it.
    private func get(_ id: UUID, viewer: Identity?) async throws -> ProductBody {
        guard let row = try await pool.query(
            "SELECT \(Self.columns) FROM products WHERE id = $1 AND (is_active OR $2 OR seller_id = $3)",
            [id, viewer?.role.isAdmin ?? false, viewer?.userId]).first
        else {
            throw APIError.notFound("product")
        }
        return try ProductBody(row)
    }

    private func create(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<ProductBody> {
        let identity = try context.requireIdentity()
        guard identity.role.isAdmin || identity.role == .seller else { throw APIError.forbidden("only sellers and admins manage products") }
        let (input, _) = try await request.decodeJSON(ProductInput.self, context: context)
        try input.validate()
        let id = UUID()
        do {
            let row = try await pool.withTransaction { db in
                try await db.query(
                    """
                    INSERT INTO products (id, seller_id, sku, name, description, price_cents, currency, stock, images, is_active)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                    """,
                    [id, identity.role == .seller ? identity.userId : nil, input.sku, input.name, input.description ?? "", input.priceCents, input.currency, input.stock,
                     input.images ?? [], input.isActive ?? true])
                try await Self.setCategories(id, input.categoryIds, on: db)
                return try await db.query("SELECT \(Self.columns) FROM products WHERE id = $1", [id])[0]
            }
            return EditedResponse(status: .created, headers: [.location: "/api/v1/products/\(id.uuidString.lowercased())"], response: try ProductBody(row))
        } catch let error as PostgresError where error.isUniqueViolation {
            throw APIError.conflict("a product with SKU \(input.sku) already exists")
        }
    }

    private func update(_ request: Request, _ context: AppRequestContext) async throws -> ProductBody {
        let identity = try context.requireIdentity()
        guard identity.role.isAdmin || identity.role == .seller else { throw APIError.forbidden("only sellers and admins manage products") }
        let id = try context.parameters.requireUUID("id", "product")
        let (input, _) = try await request.decodeJSON(ProductInput.self, context: context)
        try input.validate()
        // Optimistic locking: the update names the version it was based on, by `If-Match`
        // (412 when stale) or a `version` field (409 when stale).
        let ifMatch = request.headers[.ifMatch].flatMap { Int($0.trimmingCharacters(in: CharacterSet(charactersIn: "\" W/"))) }
        guard let expected = ifMatch ?? input.version else {
            throw APIError(status: .preconditionRequired, detail: "send the product's version (the `version` field or an If-Match header) with an update")
        }
        do {
            // A seller may only touch its own products; others' look absent.
            let updated = try await pool.withTransaction { db -> PostgresRow? in
                let rows = try await db.query(
                    """
                    UPDATE products SET name = $2, description = $3, sku = $4, price_cents = $5, currency = $6, stock = $7,
                      images = coalesce($11, images), is_active = coalesce($12, is_active), version = version + 1, updated_at = now()
                    WHERE id = $1 AND ($8 OR seller_id = $9) AND version = $10 RETURNING id
                    """,
                    [id, input.name, input.description ?? "", input.sku, input.priceCents, input.currency, input.stock, identity.role.isAdmin, identity.userId, expected,
                     input.images, input.isActive])
                guard rows.count == 1 else { return nil }
                if input.categoryIds != nil { try await Self.setCategories(id, input.categoryIds, on: db) }
                return try await db.query("SELECT \(Self.columns) FROM products WHERE id = $1", [id])[0]
            }
            guard let row = updated else {
                let visible = try await pool.query("SELECT version FROM products WHERE id = $1 AND ($2 OR seller_id = $3)", [id, identity.role.isAdmin, identity.userId])
                guard let current = visible.first else { throw APIError.notFound("product") }
                let detail = "the product changed since version \(expected) (now \(try current.decode(Int.self, "version"))); read it again and reapply the change"
                throw ifMatch != nil ? APIError(status: .preconditionFailed, detail: detail) : APIError.conflict(detail)
            }
            return try ProductBody(row)
        } catch let error as PostgresError where error.isUniqueViolation {
            throw APIError.conflict("a product with SKU \(input.sku) already exists")
        }
    }
}
