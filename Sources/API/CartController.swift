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

        /// The cart with `items`, its total and its currency (every line shares one).
        init(id: UUID, items: [CartStore.Line]) {
            self.id = id
            self.items = items
            self.totalCents = items.reduce(0) { $0 + $1.unitPriceCents * $1.quantity }
            self.currency = items.first?.currency
        }
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
        return CartBody(id: cartId, items: items)
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
    /// line, new or with the quantity added, priced now. Two round trips: every read (the cart,
    /// touched, and its lines; the product), then the line written with the `COMMIT`.
    func add(_ input: AddItem, userId: UUID) async throws -> CartStore.Line {
        try checkQuantity(input.quantity)
        return try await pool.withTransaction { db -> CartStore.Line in
            let answers = try await db.queries(
                carts.additionStatements(ofUser: userId, productId: input.productId) + [catalog.sellableStatement(input.productId)])
            let cart = try carts.addition(from: answers[0..<3])
            guard let product = try catalog.sellable(from: answers[3]) else { throw APIError.notFound("product") }
            if let currency = cart.otherCurrency, currency != product.currency { throw APIError.conflict("the cart holds items in another currency") }
            guard cart.otherLines < Checkout.maxLines else { throw APIError.conflict("a cart holds at most \(Checkout.maxLines) lines") }
            // The price is captured when added; adding the same product again adds quantity and
            // takes the current price for the whole line.
            let quantity = cart.quantityHeld + input.quantity
            try checkLine(quantity, stock: product.stock)
            guard
                let line = try await carts.addAndCommit(
                    cart.cartId, productId: input.productId, quantity: input.quantity, priceCents: product.priceCents,
                    currency: product.currency, limit: min(Self.maxQuantity, product.stock), on: db)
            else {
                // The line grew between the read and the write (its quantity set at that moment).
                throw APIError.conflict("the cart line changed meanwhile; it holds at most \(min(Self.maxQuantity, product.stock)) of this product")
            }
            return CartStore.Line(
                id: line.id, productId: input.productId, name: product.name, quantity: line.quantity,
                unitPriceCents: line.unitPriceCents, currency: product.currency)
        }
    }

    /// Refuses a line of `quantity` above the per-line limit or the product's stock.
    private func checkLine(_ quantity: Int, stock: Int) throws {
        guard quantity <= Self.maxQuantity else {
            throw APIError.conflict("a cart line holds at most \(Self.maxQuantity); this one would hold \(quantity)")
        }
        guard quantity <= stock else { throw APIError.conflict("only \(stock) in stock") }
    }

    private func update(_ request: Request, _ context: AppRequestContext) async throws -> CartBody {
        let userId = try context.requireIdentity().userId
        let itemId = try context.parameters.requireUUID("id", "cart item")
        let (input, _) = try await request.decodeJSON(UpdateItem.self, context: context)
        return try await update(itemId, to: input.quantity, userId: userId)
    }

    /// Sets a line's quantity; the cart after. The line takes the product's current price and
    /// is held to the product's stock and the per-line limit, as an addition is. Two round
    /// trips: the change with every read (``CartStore/quantityChangeStatements(_:ofUser:to:)``),
    /// then the `COMMIT` (a refusal rolls back instead).
    func update(_ itemId: UUID, to quantity: Int, userId: UUID) async throws -> CartBody {
        try checkQuantity(quantity)
        let change = try await pool.withTransaction { db -> CartStore.QuantityChange in
            let change = try carts.quantityChange(from: try await db.queries(carts.quantityChangeStatements(itemId, ofUser: userId, to: quantity)))
            guard let product = change.product else { throw APIError.notFound("cart item") }
            guard product.isActive else { throw APIError.conflict("this product is no longer sold; remove it from the cart") }
            try checkLine(quantity, stock: product.stock)
            // Read as sold and in stock, yet not set: the product changed between the two.
            guard change.changed else { throw APIError.conflict("the product changed meanwhile; try again") }
            return change
        }
        return CartBody(id: change.cartId, items: change.lines)
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
