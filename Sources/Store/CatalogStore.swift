import Domain
import Foundation
import Postgres

/// The catalog's tables: `products`, `categories`, `product_categories` and `reviews`, and
/// the stock level each product carries (taken and given back by the stock worker through
/// ``takeStock(_:on:)`` and ``returnStock(_:on:)``).
package struct CatalogStore: Sendable {
    /// Creates the store.
    package init() {}

    // MARK: Products

    /// A product as the API shows it.
    package struct Product: Codable, Sendable {
        package let id: UUID
        package let name: String
        package let description: String
        package let sku: String
        package let priceCents: Int
        package let currency: String
        package let stock: Int
        package let version: Int
        package let sellerId: UUID?
        package let images: [String]
        package let isActive: Bool
        package let categoryIds: [UUID]
        package let ratingAverage: Double?
        package let ratingCount: Int

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

    /// What a product is made of when created or replaced.
    package struct ProductFields: Sendable {
        package var name: String
        package var description: String
        package var sku: String
        package var priceCents: Int
        package var currency: String
        package var stock: Int
        /// Nil on an update keeps the current images.
        package var images: [String]?
        /// Nil on an update keeps the current flag (true on creation).
        package var isActive: Bool?

        package init(name: String, description: String, sku: String, priceCents: Int, currency: String, stock: Int, images: [String]?, isActive: Bool?) {
            self.name = name
            self.description = description
            self.sku = sku
            self.priceCents = priceCents
            self.currency = currency
            self.stock = stock
            self.images = images
            self.isActive = isActive
        }
    }

    /// Who looks at a product: an admin or its seller also sees it inactive.
    package struct Viewer: Sendable {
        package let userId: UUID?
        package let isAdmin: Bool
        package init(userId: UUID?, isAdmin: Bool) {
            self.userId = userId
            self.isAdmin = isAdmin
        }
        /// Someone not signed in.
        package static let anonymous = Viewer(userId: nil, isAdmin: false)
    }

    static let columns = """
        id, name, description, sku, price_cents, currency, stock, version, seller_id, images, is_active, rating_count, rating_sum,
        ARRAY(SELECT category_id FROM product_categories pc WHERE pc.product_id = products.id ORDER BY category_id) AS category_ids
        """

    /// Sort orders a client may ask for, mapped to fixed SQL (never user text).
    ///
    /// Each has an index that returns active products in its order (`sql/0005` for price,
    /// `sql/0016` for the rest), so a page reads about its own rows however large the catalog;
    /// relevance without a text is newest first. The rating's index is on this expression as
    /// written: change both or neither.
    package static let sorts: [String: String] = [
        "relevance": "rank DESC, created_at DESC, id",
        "price_asc": "price_cents ASC, id",
        "price_desc": "price_cents DESC, id DESC",
        "newest": "created_at DESC, id",
        "name": "name ASC, id",
        "rating": "(CASE WHEN rating_count = 0 THEN 0 ELSE rating_sum::float8 / rating_count END) DESC, id",
    ]

    /// What a search asks for; every field is optional.
    package struct Search: Sendable {
        package var text: String?
        package var minPrice: Int?
        package var maxPrice: Int?
        package var inStock: Bool?
        /// A category id or slug; its subcategories count too.
        package var category: String?
        /// One of ``CatalogStore/sorts``' keys.
        package var sort: String
        package init(text: String?, minPrice: Int?, maxPrice: Int?, inStock: Bool?, category: String?, sort: String) {
            self.text = text
            self.minPrice = minPrice
            self.maxPrice = maxPrice
            self.inStock = inStock
            self.category = category
            self.sort = sort
        }
    }

    /// Active products matching `search`, ranked and paged. Every filter is a fixed,
    /// parameterized clause that is off when its parameter is NULL; pages are stable because
    /// every sort ends with the id.
    package func search(_ search: Search, size: Int, offset: Int, on pool: PostgresPool) async throws -> (products: [Product], total: Int) {
        try await pool.withConnection { try await self.search(search, size: size, offset: offset, on: $0) }
    }

    /// The same search on a connection the caller holds.
    package func search(_ search: Search, size: Int, offset: Int, on db: PostgresConnection) async throws -> (products: [Product], total: Int) {
        let order = Self.sorts[search.sort] ?? Self.sorts["newest"]!
        let found = try await db.page(
            select: Self.columns, "FROM matches AS products", orderBy: order,
            [search.text, search.minPrice, search.maxPrice, search.inStock, search.category], size: size, offset: offset,
            prefix: """
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
                """)
        return (try found.rows.map(Product.init), found.total)
    }

    /// The newest active products in stock, at most `limit`: the storefront home page's. One
    /// statement along `products_newest_idx` (0016) that reads about `limit` rows, without the
    /// count of all products that a search page shows.
    package func newestInStock(limit: Int, on db: PostgresConnection) async throws -> [Product] {
        try await db.query(
            "SELECT \(Self.columns) FROM products WHERE is_active AND stock > 0 ORDER BY \(Self.sorts["newest"]!) LIMIT $1", [limit]
        ).map(Product.init)
    }

    /// A product `viewer` may see: an active one, or an inactive one for an admin or its seller.
    package func product(_ id: UUID, viewer: Viewer, on pool: PostgresPool) async throws -> Product? {
        try await pool.query(
            "SELECT \(Self.columns) FROM products WHERE id = $1 AND (is_active OR $2 OR seller_id = $3)",
            [id, viewer.isAdmin, viewer.userId]
        ).first.map(Product.init)
    }

    /// Active products for the storefront's sitemap: id, name and last change, newest change
    /// first, at most `limit` (a sitemap holds 50,000 URLs).
    package func sitemapEntries(limit: Int, on pool: PostgresPool) async throws -> [(id: UUID, name: String, updatedAt: Date)] {
        try await pool.query("SELECT id, name, updated_at FROM products WHERE is_active ORDER BY updated_at DESC, id LIMIT $1", [limit]).map {
            (try $0.decode(UUID.self, "id"), try $0.decode(String.self, "name"), try $0.decode(Date.self, "updated_at"))
        }
    }

    /// Whether `viewer` may see product `id`.
    package func isVisible(_ id: UUID, to viewer: Viewer, on pool: PostgresPool) async throws -> Bool {
        try await pool.query("SELECT 1 FROM products WHERE id = $1 AND (is_active OR $2 OR seller_id = $3)", [id, viewer.isAdmin, viewer.userId]).count == 1
    }

    /// A product on sale as ``sellable(from:)`` reads it: its name, price, currency and stock.
    package typealias Sellable = (name: String, priceCents: Int, currency: String, stock: Int)

    /// Reads product `id` if it is on sale, for ``PostgresConnection/queries(_:)`` (with the
    /// caller's other reads, in one round trip); ``sellable(from:)`` reads the answer.
    package func sellableStatement(_ id: UUID) -> PostgresStatement {
        PostgresStatement("SELECT name, price_cents, currency, stock FROM products WHERE id = $1 AND is_active", [id])
    }

    /// The product from the answer to ``sellableStatement(_:)``; nil when missing or inactive.
    package func sellable(from rows: PostgresRows) throws -> Sellable? {
        guard let row = rows.first else { return nil }
        return (
            try row.decode(String.self, "name"), try row.decode(Int.self, "price_cents"), try row.decode(String.self, "currency"),
            try row.decode(Int.self, "stock")
        )
    }

    /// Creates a product (owned by `sellerId` when a seller creates it) in the caller's
    /// transaction; a taken SKU throws the unique violation.
    package func create(_ id: UUID, _ fields: ProductFields, sellerId: UUID?, categoryIds: [UUID]?, on db: PostgresConnection) async throws -> Product {
        try await db.query(
            """
            INSERT INTO products (id, seller_id, sku, name, description, price_cents, currency, stock, images, is_active)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            """,
            [
                id, sellerId, fields.sku, fields.name, fields.description, fields.priceCents, fields.currency, fields.stock, fields.images ?? [],
                fields.isActive ?? true,
            ])
        try await setCategories(id, categoryIds, on: db)
        return try Product(try await db.query("SELECT \(Self.columns) FROM products WHERE id = $1", [id])[0])
    }

    /// Replaces a product if it is at `version` and the caller may change it (an admin, or
    /// the seller owning it); nil otherwise (stale, or not visible to them).
    package func replace(
        _ id: UUID, _ fields: ProductFields, categoryIds: [UUID]?, version: Int, byAdmin: Bool, userId: UUID,
        on db: PostgresConnection
    ) async throws -> Product? {
        let rows = try await db.query(
            """
            UPDATE products SET name = $2, description = $3, sku = $4, price_cents = $5, currency = $6, stock = $7,
              images = coalesce($11, images), is_active = coalesce($12, is_active), version = version + 1, updated_at = now()
            WHERE id = $1 AND ($8 OR seller_id = $9) AND version = $10 RETURNING id
            """,
            [
                id, fields.name, fields.description, fields.sku, fields.priceCents, fields.currency, fields.stock, byAdmin, userId, version,
                fields.images, fields.isActive,
            ])
        guard rows.count == 1 else { return nil }
        if categoryIds != nil { try await setCategories(id, categoryIds, on: db) }
        return try Product(try await db.query("SELECT \(Self.columns) FROM products WHERE id = $1", [id])[0])
    }

    /// The current version of a product the caller may change; nil when they may not see it.
    package func version(of id: UUID, byAdmin: Bool, userId: UUID, on pool: PostgresPool) async throws -> Int? {
        try await pool.query("SELECT version FROM products WHERE id = $1 AND ($2 OR seller_id = $3)", [id, byAdmin, userId]).first.map {
            try $0.decode(Int.self, "version")
        }
    }

    /// An unknown category in a product's `category_ids`.
    package struct UnknownCategory: Error {}

    /// Replaces a product's categories; nil leaves them. Throws ``UnknownCategory``.
    private func setCategories(_ productId: UUID, _ categoryIds: [UUID]?, on db: PostgresConnection) async throws {
        guard let categoryIds else { return }
        let unique = Array(Set(categoryIds))
        let known = try await db.query("SELECT count(*) AS n FROM categories WHERE id = ANY($1)", [unique])[0].decode(Int.self, "n")
        guard known == unique.count else { throw UnknownCategory() }
        try await db.query("DELETE FROM product_categories WHERE product_id = $1", [productId])
        try await db.query("INSERT INTO product_categories (product_id, category_id) SELECT $1, unnest($2::uuid[])", [productId, unique])
    }

    /// Adds the demo catalog's products (existing SKUs are left alone); returns how many.
    package func seed(_ products: [(sku: String, name: String, description: String, priceCents: Int, stock: Int)], on pool: PostgresPool) async throws -> Int {
        var added = 0
        for product in products {
            added += try await pool.query(
                """
                INSERT INTO products (id, sku, name, description, price_cents, currency, stock)
                VALUES ($1, $2, $3, $4, $5, 'EUR', $6) ON CONFLICT (sku) DO NOTHING
                """, [UUID(), product.sku, product.name, product.description, product.priceCents, product.stock]
            ).affectedRows
        }
        return added
    }

    // MARK: Stock levels

    /// Locks the products' rows in one fixed order (by id), so concurrent reservations never
    /// deadlock, and returns their stock. `FOR NO KEY UPDATE` is what an `UPDATE` of `stock`
    /// takes anyway; `FOR UPDATE` would also wait for every transaction inserting an order or
    /// cart line for these products (their foreign keys hold `KEY SHARE` locks).
    package func lockStock(_ productIds: [UUID], on db: PostgresConnection) async throws -> [UUID: Int] {
        var stock: [UUID: Int] = [:]
        for row in try await db.query("SELECT id, stock FROM products WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", [productIds]) {
            stock[try row.decode(UUID.self, "id")] = try row.decode(Int.self, "stock")
        }
        return stock
    }

    /// Takes each line's quantity (one line per product) from its product's stock, in one
    /// statement, each only if that much is there; returns whether every line was taken.
    /// The caller rolls back when not: an order takes all its lines or none.
    package func takeStock(_ lines: [OrderLine], on db: PostgresConnection) async throws -> Bool {
        try await db.query(
            """
            UPDATE products p SET stock = p.stock - w.quantity, version = p.version + 1, updated_at = now()
            FROM unnest($1::uuid[], $2::int8[]) AS w(product_id, quantity)
            WHERE p.id = w.product_id AND p.stock >= w.quantity
            """, [lines.map(\.productId), lines.map(\.quantity)]
        ).affectedRows == lines.count
    }

    /// Gives each line's quantity back to its product's stock, in one statement (lines of one
    /// product are summed first: an `UPDATE … FROM` changes a row once however many rows join it).
    /// Inside a transaction it goes out with the next statement or the `COMMIT`.
    package func returnStock(_ lines: [OrderLine], on db: PostgresConnection) async throws {
        guard !lines.isEmpty else { return }
        try await db.enqueue(
            """
            UPDATE products p SET stock = p.stock + r.quantity, version = p.version + 1, updated_at = now()
            FROM (SELECT product_id, sum(quantity) AS quantity FROM unnest($1::uuid[], $2::int8[]) AS l(product_id, quantity) GROUP BY product_id) AS r
            WHERE p.id = r.product_id
            """, [lines.map(\.productId), lines.map(\.quantity)])
    }

    // MARK: Categories

    /// A category of the tree (flat, `parent_id` links it).
    package struct Category: Codable, Sendable {
        package let id: UUID
        package let name: String
        package let slug: String
        package let parentId: UUID?

        init(_ row: PostgresRow) throws {
            id = try row.decode(UUID.self, "id")
            name = try row.decode(String.self, "name")
            slug = try row.decode(String.self, "slug")
            parentId = try row.decode(UUID?.self, "parent_id")
        }
    }

    /// Every category, by name.
    package func categories(on pool: PostgresPool) async throws -> [Category] {
        try await pool.query("SELECT id, name, slug, parent_id FROM categories ORDER BY name, id").map(Category.init)
    }

    /// Creates a category; a taken slug throws the unique violation, an unknown parent the
    /// foreign-key violation (23503).
    package func createCategory(name: String, slug: String, parentId: UUID?, on pool: PostgresPool) async throws -> Category {
        try Category(
            try await pool.query(
                "INSERT INTO categories (id, name, slug, parent_id) VALUES ($1, $2, $3, $4) RETURNING id, name, slug, parent_id",
                [UUID(), name, slug, parentId])[0])
    }

    /// Whether `candidate` is `id` itself or below it (moving `id` under it would make a cycle).
    package func isSelfOrBelow(_ candidate: UUID, _ id: UUID, on db: PostgresConnection) async throws -> Bool {
        try await db.query(
            """
            WITH RECURSIVE below AS (SELECT id FROM categories WHERE id = $1 UNION SELECT c.id FROM categories c JOIN below b ON c.parent_id = b.id)
            SELECT 1 FROM below WHERE id = $2
            """, [id, candidate]
        ).count > 0
    }

    /// Renames or moves a category; nil when it does not exist.
    package func updateCategory(_ id: UUID, name: String, slug: String, parentId: UUID?, on db: PostgresConnection) async throws -> Category? {
        try await db.query(
            "UPDATE categories SET name = $2, slug = $3, parent_id = $4 WHERE id = $1 RETURNING id, name, slug, parent_id",
            [id, name, slug, parentId]
        ).first.map(Category.init)
    }

    /// Deletes a category; false when it does not exist. One with subcategories throws the
    /// foreign-key violation (23503).
    package func deleteCategory(_ id: UUID, on pool: PostgresPool) async throws -> Bool {
        try await pool.query("DELETE FROM categories WHERE id = $1", [id]).affectedRows == 1
    }

    // MARK: Reviews

    /// A review with its author's first name.
    package struct Review: Codable, Sendable {
        package let id: UUID
        package let productId: UUID
        package let userId: UUID
        package let authorName: String
        package let rating: Int
        package let body: String
        package let createdAt: Date

        init(_ row: PostgresRow) throws {
            id = try row.decode(UUID.self, "id")
            productId = try row.decode(UUID.self, "product_id")
            userId = try row.decode(UUID.self, "user_id")
            authorName = try row.decode(String.self, "author_name")
            rating = try row.decode(Int.self, "rating")
            body = try row.decode(String.self, "body")
            createdAt = try row.decode(Date.self, "created_at")
        }
    }

    static let reviewColumns = "r.id, r.product_id, r.user_id, u.first_name AS author_name, r.rating, r.body, r.created_at"

    /// A product's reviews, newest first.
    package func reviews(of productId: UUID, size: Int, offset: Int, on pool: PostgresPool) async throws -> (reviews: [Review], total: Int) {
        let found = try await pool.page(
            select: Self.reviewColumns, "FROM reviews r JOIN users u ON u.id = r.user_id WHERE r.product_id = $1", orderBy: "r.created_at DESC, r.id",
            [productId], size: size, offset: offset)
        return (try found.rows.map(Review.init), found.total)
    }

    /// Locks a product's row for a review; false when there is no such product.
    package func lockForReview(_ productId: UUID, on db: PostgresConnection) async throws -> Bool {
        try await db.query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE", [productId]).count == 1
    }

    /// Adds a review and updates the product's rating aggregates; a second review by the same
    /// customer throws the unique violation.
    package func addReview(productId: UUID, userId: UUID, rating: Int, body: String, on db: PostgresConnection) async throws -> Review {
        let id = UUID()
        try await db.query(
            "INSERT INTO reviews (id, product_id, user_id, rating, body) VALUES ($1, $2, $3, $4, $5)",
            [id, productId, userId, Int32(rating), body])
        try await db.query("UPDATE products SET rating_count = rating_count + 1, rating_sum = rating_sum + $2 WHERE id = $1", [productId, rating])
        return try Review(try await db.query("SELECT \(Self.reviewColumns) FROM reviews r JOIN users u ON u.id = r.user_id WHERE r.id = $1", [id])[0])
    }
}
