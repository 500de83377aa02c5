import Foundation
import Hummingbird
import Postgres

/// The caller's cart. Every query is scoped to the caller's own cart, so another user's
/// item id is simply not found.
struct CartController: Sendable {
    let pool: PostgresPool
    /// A cart untouched for this long is emptied on its next use.
    let expiry: Duration
    static let maxQuantity = 100
    static let maxLines = 100

    struct AddItem: Decodable {
        let productId: UUID
        let quantity: Int
    }

    struct UpdateItem: Decodable {
        let quantity: Int
    }

    struct ItemBody: ResponseEncodable, Sendable {
        let id: UUID
        let productId: UUID
        let name: String
        let quantity: Int
        let unitPriceCents: Int
        let currency: String
    }

    struct CartBody: ResponseEncodable, Sendable {
        let id: UUID
        let items: [ItemBody]
        let totalCents: Int
        let currency: String?
    }

    func register(on group: RouterGroup<AppRequestContext>) {
        group.get("cart") { _, context in try await cart(for: context.requireIdentity().userId) }
        group.post("cart/items") { request, context in try await add(request, context) }
        group.put("cart/items/:id") { request, context in try await update(request, context) }
        group.delete("cart/items/:id") { _, context in try await remove(context) }
    }

    /// The user's cart id, creating the cart on first use. A cart idle for longer than
    /// `expiry` is emptied first (its captured prices are stale); every use touches it.
    static func cartId(for userId: UUID, expiry: Duration, on db: PostgresConnection) async throws -> UUID {
        let seconds = Double(expiry.components.seconds)
        try await db.query(
            """
            DELETE FROM cart_items WHERE cart_id IN (SELECT id FROM carts WHERE user_id = $1 AND updated_at < now() - make_interval(secs => $2))
            """, [userId, seconds])
        return try await db.query(
            """
            INSERT INTO carts (id, user_id) VALUES ($1, $2)
            ON CONFLICT (user_id) DO UPDATE SET updated_at = now() RETURNING id
            """, [UUID(), userId])[0].decode(UUID.self, "id")
    }

    private func cart(for userId: UUID) async throws -> CartBody {
        try await pool.withConnection { db in
            let cartId = try await Self.cartId(for: userId, expiry: expiry, on: db)
            let rows = try await db.query(
                """
                SELECT ci.id, ci.product_id, p.name, ci.quantity, ci.unit_price_cents, ci.currency
                FROM cart_items ci JOIN products p ON p.id = ci.product_id WHERE ci.cart_id = $1 ORDER BY p.name, ci.id
                """, [cartId])
            let items = try rows.map {
                ItemBody(id: try $0.decode(UUID.self, "id"), productId: try $0.decode(UUID.self, "product_id"), name: try $0.decode(String.self, "name"),
                         quantity: try $0.decode(Int.self, "quantity"), unitPriceCents: try $0.decode(Int.self, "unit_price_cents"), currency: try $0.decode(String.self, "currency"))
            }
            return CartBody(id: cartId, items: items, totalCents: items.reduce(0) { $0 + $1.unitPriceCents * $1.quantity }, currency: items.first?.currency)
        }
    }

    private func checkQuantity(_ quantity: Int) throws {
        guard (1...Self.maxQuantity).contains(quantity) else { throw APIError.invalid([("quantity", "must be from 1 to \(Self.maxQuantity)")]) }
    }

    /// Adds to the cart; answers 201 with the line (new, or the product's existing line with
    /// the quantity added) and its `Location`.
    private func add(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<ItemBody> {
        let userId = try context.requireIdentity().userId
        let (input, _) = try await request.decodeJSON(AddItem.self, context: context)
        try checkQuantity(input.quantity)
        let item = try await pool.withTransaction { db -> ItemBody in
            let cartId = try await Self.cartId(for: userId, expiry: expiry, on: db)
            guard let product = try await db.query("SELECT name, price_cents, currency, stock FROM products WHERE id = $1 AND is_active", [input.productId]).first else {
                throw APIError.notFound("product")
            }
            let existing = try await db.query("SELECT currency FROM cart_items WHERE cart_id = $1 AND product_id <> $2", [cartId, input.productId])
            let currency = try product.decode(String.self, "currency")
            if let other = existing.first, try other.decode(String.self, "currency") != currency {
                throw APIError.conflict("the cart holds items in another currency")
            }
            guard existing.count < Self.maxLines else { throw APIError.conflict("a cart holds at most \(Self.maxLines) lines") }
            // The price is captured when added; adding the same product again adds quantity and
            // takes the current price for the whole line.
            let line = try await db.query(
                """
                INSERT INTO cart_items (id, cart_id, product_id, quantity, unit_price_cents, currency) VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = cart_items.quantity + EXCLUDED.quantity, unit_price_cents = EXCLUDED.unit_price_cents
                RETURNING id, quantity, unit_price_cents
                """, [UUID(), cartId, input.productId, input.quantity, try product.decode(Int.self, "price_cents"), currency])[0]
            let quantity = try line.decode(Int.self, "quantity")
            guard quantity <= Self.maxQuantity else { throw APIError.conflict("a cart line holds at most \(Self.maxQuantity); this one would hold \(quantity)") }
            guard quantity <= (try product.decode(Int.self, "stock")) else { throw APIError.conflict("only \(try product.decode(Int.self, "stock")) in stock") }
            return ItemBody(id: try line.decode(UUID.self, "id"), productId: input.productId, name: try product.decode(String.self, "name"),
                            quantity: quantity, unitPriceCents: try line.decode(Int.self, "unit_price_cents"), currency: currency)
        }
        return EditedResponse(status: .created, headers: [.location: "/api/v1/cart/items/\(item.id.uuidString.lowercased())"], response: item)
    }

    private func update(_ request: Request, _ context: AppRequestContext) async throws -> CartBody {
        let userId = try context.requireIdentity().userId
        let itemId = try context.parameters.requireUUID("id", "cart item")
        let (input, _) = try await request.decodeJSON(UpdateItem.self, context: context)
        try checkQuantity(input.quantity)
        // A changed line takes the product's current price (and needs it still on sale).
        try await pool.withTransaction { db in
            let updated = try await db.query(
                """
                UPDATE cart_items ci SET quantity = $3, unit_price_cents = p.price_cents FROM carts c, products p
                WHERE ci.id = $1 AND ci.cart_id = c.id AND c.user_id = $2 AND p.id = ci.product_id
                RETURNING p.is_active
                """, [itemId, userId, input.quantity])
            guard let product = updated.first else { throw APIError.notFound("cart item") }
            guard try product.decode(Bool.self, "is_active") else { throw APIError.conflict("this product is no longer sold; remove it from the cart") }
        }
        return try await cart(for: userId)
    }

    private func remove(_ context: AppRequestContext) async throws -> Response {
        let userId = try context.requireIdentity().userId
        let itemId = try context.parameters.requireUUID("id", "cart item")
        let deleted = try await pool.query(
            "DELETE FROM cart_items ci USING carts c WHERE ci.id = $1 AND ci.cart_id = c.id AND c.user_id = $2", [itemId, userId])
        guard deleted.affectedRows == 1 else { throw APIError.notFound("cart item") }
        return Response(status: .noContent)
    }
}
