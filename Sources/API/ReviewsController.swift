import Foundation
import Hummingbird
import Postgres
import Store

/// Reviews: anyone reads them; a customer writes one per product, and only after an order
/// containing it was delivered. The product keeps the count and sum for its average.
struct ReviewsController: Sendable {
    let pool: PostgresPool
    private let catalog = CatalogStore()
    private let orders = OrderStore()

    struct Input: Decodable {
        let rating: Int
        let body: String?
    }

    func register(public group: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AppRequestContext>) {
        group.get("products/:id/reviews") { request, context in try await list(request, context) }
        authenticated.post("products/:id/reviews") { request, context in try await create(request, context) }
    }

    private func list(_ request: Request, _ context: AppRequestContext) async throws -> PageBody<CatalogStore.Review> {
        let productId = try context.parameters.requireUUID("id", "product")
        let page = try Page(request)
        // The product's visibility rule: inactive ones only for an admin or their seller.
        guard try await catalog.isVisible(productId, to: context.identity.catalogViewer, on: pool) else { throw APIError.notFound("product") }
        let found = try await catalog.reviews(of: productId, size: page.size, offset: page.offset, on: pool)
        return PageBody(items: found.reviews, page: page.number, pageSize: page.size, total: found.total)
    }

    private func create(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<CatalogStore.Review> {
        let userId = try context.requireIdentity().userId
        let productId = try context.parameters.requireUUID("id", "product")
        let (input, _) = try await request.decodeJSON(Input.self, context: context)
        return EditedResponse(status: .created, response: try await create(input, productId: productId, userId: userId))
    }

    /// Writes `userId`'s review of a product they received: the API's route and the
    /// storefront's form.
    func create(_ input: Input, productId: UUID, userId: UUID) async throws -> CatalogStore.Review {
        var problems: [(String, String)] = []
        if !(1...5).contains(input.rating) { problems.append(("rating", "must be from 1 to 5")) }
        if !FieldRules.isFreeText(input.body, max: 2_000) { problems.append(("body", "must be at most 2000 characters")) }
        guard problems.isEmpty else { throw APIError.invalid(problems) }
        return try await pool.withTransaction { db -> CatalogStore.Review in
            guard try await catalog.lockForReview(productId, on: db) else { throw APIError.notFound("product") }
            guard try await orders.hasDelivered(productId, to: userId, on: db) else {
                throw APIError.forbidden("only customers whose order of this product was delivered can review it")
            }
            do {
                return try await catalog.addReview(productId: productId, userId: userId, rating: input.rating, body: input.body ?? "", on: db)
            } catch let error as PostgresError where error.isUniqueViolation {
                throw APIError.conflict("you have already reviewed this product")
            }
        }
    }
}
