import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Postgres

/// The catalog: public reads; ADMIN and SELLER create; ADMIN or the owning SELLER update.
struct ProductsController: Sendable {
    let pool: PostgresPool

    struct ProductInput: Decodable {
        let name: String
        let description: String?
        let sku: String
        let priceCents: Int
        let currency: String
        let stock: Int
        /// The version the client read; required on updates (or `If-Match`).
        let version: Int?

        func validate() throws {
            var problems: [(String, String)] = []
            if name.trimmingCharacters(in: .whitespaces).isEmpty || name.count > 200 { problems.append(("name", "must be 1 to 200 characters")) }
            if (description?.count ?? 0) > 5_000 { problems.append(("description", "must be at most 5000 characters")) }
            if sku.isEmpty || sku.count > 64 || sku.contains(where: \.isWhitespace) { problems.append(("sku", "must be 1 to 64 characters without spaces")) }
            if priceCents < 0 || priceCents > 100_000_000_00 { problems.append(("price_cents", "must be from 0 to 10000000000")) }
            if !Money.isValidCurrency(currency) { problems.append(("currency", "must be an ISO 4217 code such as EUR")) }
            if stock < 0 || stock > 1_000_000_000 { problems.append(("stock", "must be from 0 to 1000000000")) }
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
        }
    }

    static let columns = "id, name, description, sku, price_cents, currency, stock, version, seller_id"

    func register(public group: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AppRequestContext>) {
        group.get("products") { request, _ in try await list(request) }
        group.get("products/:id") { _, context in
            let product = try await get(context.parameters.requireUUID("id", "product"))
            return EditedResponse(headers: [.eTag: "\"\(product.version)\""], response: product)
        }
        authenticated.post("products") { request, context in try await create(request, context) }
        authenticated.put("products/:id") { request, context in try await update(request, context) }
    }

    private func list(_ request: Request) async throws -> PageBody<ProductBody> {
        let page = try Page(request)
        let rows = try await pool.query(
            "SELECT \(Self.columns), count(*) OVER () AS total FROM products WHERE is_active ORDER BY created_at, id LIMIT $1 OFFSET $2",
            [page.size, page.offset])
        return PageBody(items: try rows.map(ProductBody.init), page: page.number, pageSize: page.size,
                        total: try rows.first?.decode(Int.self, "total") ?? 0)
    }

    private func get(_ id: UUID) async throws -> ProductBody {
        guard let row = try await pool.query("SELECT \(Self.columns) FROM products WHERE id = $1 AND is_active", [id]).first else {
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
            let row = try await pool.query(
                """
                INSERT INTO products (id, seller_id, sku, name, description, price_cents, currency, stock)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING \(Self.columns)
                """,
                [id, identity.role == .seller ? identity.userId : nil, input.sku, input.name, input.description ?? "", input.priceCents, input.currency, input.stock])[0]
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
            let rows = try await pool.query(
                """
                UPDATE products SET name = $2, description = $3, sku = $4, price_cents = $5, currency = $6, stock = $7,
                  version = version + 1, updated_at = now()
                WHERE id = $1 AND ($8 OR seller_id = $9) AND version = $10 RETURNING \(Self.columns)
                """,
                [id, input.name, input.description ?? "", input.sku, input.priceCents, input.currency, input.stock, identity.role.isAdmin, identity.userId, expected])
            guard let row = rows.first else {
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
