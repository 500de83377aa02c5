import Domain
import Foundation
import Hummingbird
import Postgres
import Store

/// The caller's cart. Every statement is scoped to the caller's own cart (``CartStore``),
/// so another user's item id is simply not found.
struct CartController: Sendable {
    let pool: PostgresPool
    let carts: CartStore
    private let catalog = CatalogStore()
    static let maxQuantity = 100

    init(pool: PostgresPool, expiry: Duration) {
        self.pool = pool
        self.carts = CartStore(expiry: expiry)
    }

    struct AddItem: Decodable {
        let productId: UUID
        let quantity: Int
    }

    struct UpdateItem: Decodable {
        let quantity: Int
    }

    struct CartBody: ResponseEncodable, Sendable {
        let id: UUID
        let items: [CartStore.Line]
        let totalCents: Int
        let currency: String?
    }

    func register(on group: RouterGroup<AppRequestContext>) {
        group.get("cart") { _, context in try await cart(for: context.requireIdentity().userId) }
        group.post("cart/items") { request, context in try await add(request, context) }
        group.put("cart/items/:id") { request, context in try await update(request, context) }
        group.delete("cart/items/:id") { _, context in try await remove(context) }
    }

    /// `userId`'s cart with its lines as they are now.
    func cart(for userId: UUID) async throws -> CartBody {
        let (cartId, items) = try await pool.withConnection { try await carts.lines(ofUser: userId, on: $0) }
        return CartBody(id: cartId, items: items, totalCents: items.reduce(0) { $0 + $1.unitPriceCents * $1.quantity }, currency: items.first?.currency)
    }

    private func checkQuantity(_ quantity: Int) throws {
        guard (1...Self.maxQuantity).contains(quantity) else { throw APIError.invalid([("quantity", "must be from 1 to \(Self.maxQuantity)")]) }
    }

    /// Adds to the cart; answers 201 with the line (new, or the product's existing line with
    /// the quantity added) and its `Location`.
    private func add(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<CartStore.Line> {
        let userId = try context.requireIdentity().userId
        let (input, _) = try await request.decodeJSON(AddItem.self, context: context)
        let item = try await add(input, userId: userId)
        return EditedResponse(status: .created, headers: [.location: "/api/v1/cart/items/\(item.id.uuidString.lowercased())"], response: item)
    }

    /// Adds to `userId`'s cart (the API's route and the storefront's form): the product's
    /// line, new or with the quantity added, priced now.
    func add(_ input: AddItem, userId: UUID) async throws -> CartStore.Line {
        try checkQuantity(input.quantity)
        return try await pool.withTransaction { db -> CartStore.Line in
            let cartId = try await carts.cartId(for: userId, on: db)
            guard let product = try await catalog.sellable(input.productId, on: db) else { throw APIError.notFound("product") }
            let others = try await carts.otherLines(cartId, than: input.productId, on: db)
            if let currency = others.currency, currency != product.currency { throw APIError.conflict("the cart holds items in another currency") }
            guard others.count < Checkout.maxLines else { throw APIError.conflict("a cart holds at most \(Checkout.maxLines) lines") }
            // The price is captured when added; adding the same product again adds quantity and
            // takes the current price for the whole line.
            let line = try await carts.add(
                cartId, productId: input.productId, quantity: input.quantity, priceCents: product.priceCents,
                currency: product.currency, on: db)
            guard line.quantity <= Self.maxQuantity else {
                throw APIError.conflict("a cart line holds at most \(Self.maxQuantity); this one would hold \(line.quantity)")
            }
            guard line.quantity <= product.stock else { throw APIError.conflict("only \(product.stock) in stock") }
            return CartStore.Line(
                id: line.id, productId: input.productId, name: product.name, quantity: line.quantity,
                unitPriceCents: line.unitPriceCents, currency: product.currency)
        }
    }

    private func update(_ request: Request, _ context: AppRequestContext) async throws -> CartBody {
        let userId = try context.requireIdentity().userId
        let itemId = try context.parameters.requireUUID("id", "cart item")
        let (input, _) = try await request.decodeJSON(UpdateItem.self, context: context)
        return try await update(itemId, to: input.quantity, userId: userId)
    }

    /// Sets a line's quantity (it takes the product's current price); the cart after.
    func update(_ itemId: UUID, to quantity: Int, userId: UUID) async throws -> CartBody {
        let input = UpdateItem(quantity: quantity)
        try checkQuantity(input.quantity)
        // A changed line takes the product's current price (and needs it still on sale).
        try await pool.withTransaction { db in
            guard let stillSold = try await carts.setQuantity(itemId, ofUser: userId, to: input.quantity, on: db) else { throw APIError.notFound("cart item") }
            guard stillSold else { throw APIError.conflict("this product is no longer sold; remove it from the cart") }
        }
        return try await cart(for: userId)
    }

    private func remove(_ context: AppRequestContext) async throws -> Response {
        try await remove(try context.parameters.requireUUID("id", "cart item"), userId: try context.requireIdentity().userId)
        return Response(status: .noContent)
    }

    /// Removes a line of `userId`'s cart; 404 when it is not theirs.
    func remove(_ itemId: UUID, userId: UUID) async throws {
        guard try await carts.remove(itemId, ofUser: userId, on: pool) else { throw APIError.notFound("cart item") }
    }
}
