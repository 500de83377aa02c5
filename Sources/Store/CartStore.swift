import Domain
import Foundation
import Postgres
import Units

/// The cart aggregate's tables: `carts` and `cart_items`. Every statement is scoped to the
/// caller's own cart, so another user's line is simply not found.
package struct CartStore: Sendable {
    /// A cart untouched for this long is emptied on its next use.
    package let expiry: Duration

    /// Creates the store.
    package init(expiry: Duration) { self.expiry = expiry }

    /// A cart line with its product's name.
    package struct Line: Codable, Sendable {
        package let id: UUID
        package let productId: UUID
        package let name: String
        package let quantity: Int
        package let unitPriceCents: Int
        package let currency: String

        package init(id: UUID, productId: UUID, name: String, quantity: Int, unitPriceCents: Int, currency: String) {
            self.id = id
            self.productId = productId
            self.name = name
            self.quantity = quantity
            self.unitPriceCents = unitPriceCents
            self.currency = currency
        }
    }

    /// The user's cart id, creating the cart on first use. A cart idle for longer than
    /// `expiry` is emptied first (its captured prices are stale); every use touches it.
    package func cartId(for userId: UUID, on db: PostgresConnection) async throws -> UUID {
        try await db.queries([expireStatement(ofUser: userId), touchStatement(ofUser: userId)])[1][0].decode(UUID.self, "id")
    }

    /// Empties the user's cart if it was idle longer than `expiry`.
    private func expireStatement(ofUser userId: UUID) -> PostgresStatement {
        PostgresStatement(
            "DELETE FROM cart_items WHERE cart_id IN (SELECT id FROM carts WHERE user_id = $1 AND updated_at < now() - make_interval(secs => $2))",
            [userId, expiry.secondsWithFraction])
    }

    /// Creates the user's cart, or marks it used now; returns its id.
    private func touchStatement(ofUser userId: UUID) -> PostgresStatement {
        PostgresStatement(
            "INSERT INTO carts (id, user_id) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET updated_at = now() RETURNING id", [UUID(), userId])
    }

    /// Locks the cart until the transaction ends: two placements by one user never take the
    /// same lines. The lock goes out with the caller's next statement (which it precedes on
    /// the server), so nothing outside the database may rely on it before one is sent.
    package func lock(_ cartId: UUID, on db: PostgresConnection) async throws {
        try await db.enqueue("SELECT id FROM carts WHERE id = $1 FOR NO KEY UPDATE", [cartId])
    }

    /// The user's cart: its lines, by product name. One round trip: the cart's expiry, its
    /// touch and its lines go out together (every storefront page counts the cart's items).
    package func lines(ofUser userId: UUID, on db: PostgresConnection) async throws -> (cartId: UUID, lines: [Line]) {
        let answers = try await db.queries([expireStatement(ofUser: userId), touchStatement(ofUser: userId), linesStatement(ofUser: userId)])
        return (try answers[1][0].decode(UUID.self, "id"), try Self.lines(from: answers[2]))
    }

    /// The user's lines with their products' names, by name (a line's id breaks ties).
    private func linesStatement(ofUser userId: UUID) -> PostgresStatement {
        PostgresStatement(
            """
            SELECT ci.id, ci.product_id, p.name, ci.quantity, ci.unit_price_cents, ci.currency
            FROM carts c JOIN cart_items ci ON ci.cart_id = c.id JOIN products p ON p.id = ci.product_id WHERE c.user_id = $1 ORDER BY p.name, ci.id
            """, [userId])
    }

    /// The lines from the answer to ``linesStatement(ofUser:)``.
    private static func lines(from rows: PostgresRows) throws -> [Line] {
        try rows.map {
            Line(
                id: try $0.decode(UUID.self, "id"), productId: try $0.decode(UUID.self, "product_id"), name: try $0.decode(String.self, "name"),
                quantity: try $0.decode(Int.self, "quantity"), unitPriceCents: try $0.decode(Int.self, "unit_price_cents"),
                currency: try $0.decode(String.self, "currency"))
        }
    }

    /// The user's cart lines with their products as they are now, by product id.
    package func pricedLines(ofUser userId: UUID, on db: PostgresConnection) async throws -> [Checkout.Line] {
        try await db.queries([pricedLinesStatement(ofUser: userId)])[0].map(Self.pricedLine)
    }

    private func pricedLinesStatement(ofUser userId: UUID) -> PostgresStatement {
        PostgresStatement(
            """
            SELECT ci.product_id, p.name, p.sku, ci.quantity, ci.unit_price_cents AS captured_cents, p.price_cents AS current_cents, p.currency, p.is_active
            FROM carts c JOIN cart_items ci ON ci.cart_id = c.id JOIN products p ON p.id = ci.product_id WHERE c.user_id = $1 ORDER BY ci.product_id
            """, [userId])
    }

    /// The statements that open a checkout of `userId`'s cart in the caller's transaction, for
    /// ``PostgresConnection/queries(_:)`` (with the caller's other reads, in one round trip):
    /// the cart is emptied if it expired, touched (created on first use), and its lines read
    /// with their products as they are now. Touching the cart is an `UPDATE` of its row (or
    /// the insert of a new one), which holds the row's lock until the transaction ends: two
    /// placements by one user never take the same lines, and the second reads the cart as the
    /// first left it. ``checkoutLines(from:)`` reads the answers.
    package func checkoutStatements(ofUser userId: UUID) -> [PostgresStatement] {
        [expireStatement(ofUser: userId), touchStatement(ofUser: userId), pricedLinesStatement(ofUser: userId)]
    }

    /// The cart and its priced lines from the answers to ``checkoutStatements(ofUser:)``, in order.
    package func checkoutLines(from answers: ArraySlice<PostgresRows>) throws -> (cartId: UUID, lines: [Checkout.Line]) {
        let answers = Array(answers)
        guard answers.count == 3 else {
            throw PostgresError(code: .rowNotFound, message: "checkoutLines(from:) reads the 3 answers to checkoutStatements(ofUser:), not \(answers.count)")
        }
        return (try answers[1][0].decode(UUID.self, "id"), try answers[2].map(Self.pricedLine))
    }

    private static func pricedLine(_ row: PostgresRow) throws -> Checkout.Line {
        Checkout.Line(
            productId: try row.decode(UUID.self, "product_id"), name: try row.decode(String.self, "name"), sku: try row.decode(String.self, "sku"),
            quantity: try row.decode(Int.self, "quantity"), capturedCents: try row.decode(Int.self, "captured_cents"),
            currentCents: try row.decode(Int.self, "current_cents"), currency: try row.decode(String.self, "currency"),
            isActive: try row.decode(Bool.self, "is_active"))
    }

    /// Gives every line the current price of its product.
    package func repriceToCurrent(_ cartId: UUID, on db: PostgresConnection) async throws {
        try await db.query(
            "UPDATE cart_items ci SET unit_price_cents = p.price_cents FROM products p WHERE ci.cart_id = $1 AND p.id = ci.product_id AND ci.unit_price_cents <> p.price_cents",
            [cartId])
    }

    /// Empties the cart (its lines became an order); inside a transaction it goes out with the
    /// next statement or the `COMMIT`.
    package func clear(_ cartId: UUID, on db: PostgresConnection) async throws {
        try await db.enqueue("DELETE FROM cart_items WHERE cart_id = $1", [cartId])
    }

    /// What an addition of `productId` to the user's cart finds there (read by
    /// ``additionStatements(ofUser:productId:)``): the cart, how many lines of other products it
    /// holds and their currency, and how many of the product it holds already.
    package struct Addition: Sendable {
        package let cartId: UUID
        package let otherLines: Int
        package let otherCurrency: String?
        package let quantityHeld: Int
    }

    /// The statements that open an addition of `productId` to `userId`'s cart in the caller's
    /// transaction, for ``PostgresConnection/queries(_:)`` (with the caller's other reads, in
    /// one round trip): the cart is emptied if it expired, touched (created on first use),
    /// which locks its row until the transaction ends, and its lines read. So two additions by
    /// one user take turns, and each reads the lines as the other left them.
    /// ``addition(from:)`` reads the answers.
    package func additionStatements(ofUser userId: UUID, productId: UUID) -> [PostgresStatement] {
        [
            expireStatement(ofUser: userId), touchStatement(ofUser: userId),
            PostgresStatement(
                "SELECT ci.product_id = $2 AS same, ci.currency, ci.quantity FROM carts c JOIN cart_items ci ON ci.cart_id = c.id WHERE c.user_id = $1",
                [userId, productId]),
        ]
    }

    /// The cart and its lines from the answers to ``additionStatements(ofUser:productId:)``, in order.
    package func addition(from answers: ArraySlice<PostgresRows>) throws -> Addition {
        let answers = Array(answers)
        guard answers.count == 3 else {
            throw PostgresError(
                code: .rowNotFound, message: "addition(from:) reads the 3 answers to additionStatements(ofUser:productId:), not \(answers.count)")
        }
        var otherLines = 0, otherCurrency: String?, quantityHeld = 0
        for row in answers[2] {
            if try row.decode(Bool.self, "same") {
                quantityHeld = try row.decode(Int.self, "quantity")
            } else {
                otherLines += 1
                otherCurrency = try row.decode(String.self, "currency")
            }
        }
        return Addition(cartId: try answers[1][0].decode(UUID.self, "id"), otherLines: otherLines, otherCurrency: otherCurrency, quantityHeld: quantityHeld)
    }

    /// Adds `quantity` of a product at `priceCents` and commits the caller's transaction in
    /// the same round trip: the product's line grows if it is already there and takes the
    /// current price. Returns the line's id, quantity and price, or nil (still committed,
    /// with no line changed) when the line would hold more than `limit`: the caller checked
    /// that against ``Addition/quantityHeld``, so this happens only when the line changed in
    /// between (a quantity set at the same moment, which does not lock the cart).
    package func addAndCommit(
        _ cartId: UUID, productId: UUID, quantity: Int, priceCents: Int, currency: String, limit: Int,
        on db: PostgresConnection
    ) async throws -> (id: UUID, quantity: Int, unitPriceCents: Int)? {
        guard
            let line = try await db.queryAndCommit(
                """
                INSERT INTO cart_items (id, cart_id, product_id, quantity, unit_price_cents, currency) VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = cart_items.quantity + EXCLUDED.quantity, unit_price_cents = EXCLUDED.unit_price_cents
                WHERE cart_items.quantity + EXCLUDED.quantity <= $7
                RETURNING id, quantity, unit_price_cents
                """, [UUID.random(), cartId, productId, quantity, priceCents, currency, limit]
            ).first
        else { return nil }
        return (try line.decode(UUID.self, "id"), try line.decode(Int.self, "quantity"), try line.decode(Int.self, "unit_price_cents"))
    }

    /// What a quantity change read and wrote, from ``quantityChange(from:)``.
    package struct QuantityChange: Sendable {
        /// The line's product as it was read (whether it is sold, its stock), or nil when the
        /// line is not in `userId`'s cart (never was, removed, or emptied with an expired cart).
        package let product: (isActive: Bool, stock: Int)?
        /// Whether the line was set: only while its product is sold and holds the quantity.
        package let changed: Bool
        /// The cart's lines after the change, in the transaction.
        package let lines: [Line]
        /// The cart's id.
        package let cartId: UUID
    }

    /// The statements that set a line of `userId`'s cart to `quantity` in the caller's
    /// transaction, for ``PostgresConnection/queries(_:)``, so the change and the cart after it
    /// are one round trip and the `COMMIT` the other: the cart emptied if it expired (an
    /// expired line is not found), touched, which locks its row as an addition does, the line's
    /// product read, the line set with its product's current price only while the product is
    /// sold and has `quantity` in stock, and the cart's lines read back.
    /// ``quantityChange(from:)`` reads the answers; the caller decides from them and rolls
    /// back on a refusal.
    package func quantityChangeStatements(_ itemId: UUID, ofUser userId: UUID, to quantity: Int) -> [PostgresStatement] {
        [
            expireStatement(ofUser: userId), touchStatement(ofUser: userId),
            PostgresStatement(
                """
                SELECT p.is_active, p.stock FROM cart_items ci JOIN carts c ON c.id = ci.cart_id JOIN products p ON p.id = ci.product_id
                WHERE ci.id = $1 AND c.user_id = $2
                """, [itemId, userId]),
            PostgresStatement(
                """
                UPDATE cart_items ci SET quantity = $3, unit_price_cents = p.price_cents FROM carts c, products p
                WHERE ci.id = $1 AND ci.cart_id = c.id AND c.user_id = $2 AND p.id = ci.product_id AND p.is_active AND p.stock >= $3
                RETURNING ci.id
                """, [itemId, userId, quantity]),
            linesStatement(ofUser: userId),
        ]
    }

    /// The change from the answers to ``quantityChangeStatements(_:ofUser:to:)``, in order.
    package func quantityChange(from answers: [PostgresRows]) throws -> QuantityChange {
        guard answers.count == 5 else {
            throw PostgresError(
                code: .rowNotFound, message: "quantityChange(from:) reads the 5 answers to quantityChangeStatements(_:ofUser:to:), not \(answers.count)")
        }
        let product = try answers[2].first.map { (isActive: try $0.decode(Bool.self, "is_active"), stock: try $0.decode(Int.self, "stock")) }
        return QuantityChange(
            product: product, changed: answers[3].first != nil, lines: try Self.lines(from: answers[4]), cartId: try answers[1][0].decode(UUID.self, "id"))
    }

    /// Removes a line of `userId`'s cart; false when there is no such line.
    package func remove(_ itemId: UUID, ofUser userId: UUID, on pool: PostgresPool) async throws -> Bool {
        try await pool.query("DELETE FROM cart_items ci USING carts c WHERE ci.id = $1 AND ci.cart_id = c.id AND c.user_id = $2", [itemId, userId]).affectedRows
            == 1
    }

    /// Fills the cart with one of each product (the load generator's refill, so that what
    /// it measures is placement alone). One round trip: the statement runs on its session's
    /// plan (``PostgresConnection/preferGenericPlans()``), a look-up of each product by key
    /// whatever the array, because PostgreSQL otherwise planned it afresh for every refill,
    /// about a third of its server time (BENCHMARKS.md, "2026-12-07 (16:00)").
    package func refill(_ cartId: UUID, with productIds: [UUID], on pool: PostgresPool) async throws {
        try await pool.withTransaction { db in
            try db.preferGenericPlans()
            _ = try await db.queryAndCommit(
                """
                INSERT INTO cart_items (id, cart_id, product_id, quantity, unit_price_cents, currency)
                SELECT gen_random_uuid(), $1, p.id, 1, p.price_cents, p.currency FROM products p WHERE p.id = ANY($2)
                ON CONFLICT (cart_id, product_id) DO NOTHING
                """, [cartId, productIds])
        }
    }
}
