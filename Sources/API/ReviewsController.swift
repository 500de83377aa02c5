import Foundation
import Hummingbird
import Postgres

/// Reviews: anyone reads them; a customer writes one per product, and only after an order
/// containing it was delivered. The product keeps the count and sum for its average.
struct ReviewsController: Sendable {
    let pool: PostgresPool

    struct Input: Decodable {
        let rating: Int
        let body: String?
    }

    struct ReviewBody: ResponseEncodable, Sendable {
        let id: UUID
        let productId: UUID
        let userId: UUID
        let authorName: String
        let rating: Int
        let body: String
        let createdAt: Date

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

    static let select = """
        SELECT r.id, r.product_id, r.user_id, u.first_name AS author_name, r.rating, r.body, r.created_at
        FROM reviews r JOIN users u ON u.id = r.user_id
        """

    func register(public group: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AppRequestContext>) {
        group.get("products/:id/reviews") { request, context in try await list(request, context) }
        authenticated.post("products/:id/reviews") { request, context in try await create(request, context) }
    }

    private func list(_ request: Request, _ context: AppRequestContext) async throws -> PageBody<ReviewBody> {
        let productId = try context.parameters.requireUUID("id", "product")
        let page = try Page(request)
        // The product's visibility rule: inactive ones only for an admin or their seller.
        let viewer = context.identity
        guard try await pool.query("SELECT 1 FROM products WHERE id = $1 AND (is_active OR $2 OR seller_id = $3)",
                                   [productId, viewer?.role.isAdmin ?? false, viewer?.userId]).count == 1
        else { throw APIError.notFound("product") }
        let found = try await pool.query(
            """
            SELECT r.id, r.product_id, r.user_id, u.first_name AS author_name, r.rating, r.body, r.created_at, count(*) OVER () AS total
            FROM reviews r JOIN users u ON u.id = r.user_id WHERE r.product_id = $1 ORDER BY r.created_at DESC, r.id LIMIT $2 OFFSET $3
            """, [productId, page.size, page.offset])
        return PageBody(items: try found.map(ReviewBody.init), page: page.number, pageSize: page.size, total: try found.first?.decode(Int.self, "total") ?? 0)
    }

    private func create(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<ReviewBody> {
        let userId = try context.requireIdentity().userId
        let productId = try context.parameters.requireUUID("id", "product")
        let (input, _) = try await request.decodeJSON(Input.self, context: context)
        var problems: [(String, String)] = []
        if !(1...5).contains(input.rating) { problems.append(("rating", "must be from 1 to 5")) }
        if !FieldRules.isFreeText(input.body, max: 2_000) { problems.append(("body", "must be at most 2000 characters")) }
        guard problems.isEmpty else { throw APIError.invalid(problems) }
        let row = try await pool.withTransaction { db -> PostgresRow in
            guard try await db.query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE", [productId]).count == 1 else { throw APIError.notFound("product") }
            let delivered = try await db.query(
                """
                SELECT 1 FROM orders o JOIN order_items i ON i.order_id = o.id
                WHERE o.user_id = $1 AND i.product_id = $2 AND o.status = 'DELIVERED' LIMIT 1
                """, [userId, productId])
            guard delivered.count == 1 else { throw APIError.forbidden("only customers whose order of this product was delivered can review it") }
            let id = UUID()
            do {
                try await db.query("INSERT INTO reviews (id, product_id, user_id, rating, body) VALUES ($1, $2, $3, $4, $5)",
                                   [id, productId, userId, Int32(input.rating), input.body ?? ""])
            } catch let error as PostgresError where error.isUniqueViolation {
                throw APIError.conflict("you have already reviewed this product")
            }
            try await db.query("UPDATE products SET rating_count = rating_count + 1, rating_sum = rating_sum + $2 WHERE id = $1", [productId, input.rating])
            return try await db.query("\(Self.select) WHERE r.id = $1", [id])[0]
        }
        return EditedResponse(status: .created, response: try ReviewBody(row))
    }
}
