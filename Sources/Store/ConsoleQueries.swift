import Foundation
import Postgres

/// The operator console's read models: searches and figures that join several tables for
/// display. Read-only; every table is still written by its own store.
package struct ConsoleQueries: Sendable {
    /// Creates the query set.
    package init() {}

    // MARK: Orders

    /// What the orders list filters on; every field is optional.
    package struct OrderFilter: Sendable {
        package var status: String?
        package var from: Date?
        package var to: Date?
        package var email: String?
        package var orderNumber: String?
        package var minTotalCents: Int?
        package var maxTotalCents: Int?
        package init() {}
    }

    /// One row of the orders list.
    package struct OrderRow: Sendable {
        package let id: UUID
        package let orderNumber: String
        package let status: String
        package let email: String
        package let totalCents: Int
        package let currency: String
        package let createdAt: Date
        package let paymentFlag: String?
        /// Creates a row.
        package init(id: UUID, orderNumber: String, status: String, email: String, totalCents: Int, currency: String, createdAt: Date, paymentFlag: String?) {
            self.id = id
            self.orderNumber = orderNumber
            self.status = status
            self.email = email
            self.totalCents = totalCents
            self.currency = currency
            self.createdAt = createdAt
            self.paymentFlag = paymentFlag
        }
    }

    /// How many matching orders past a page's first the orders list counts; past that it says
    /// "more than". An exact count would read every matching order on each view, and the
    /// list re-reads itself whenever an order event arrives while it is open.
    package static let orderCountLimit = 1_000

    /// A page of orders matching `filter`, newest first, walked along `orders_created_idx`.
    package func orderRows(_ filter: OrderFilter, size: Int, offset: Int, on db: PostgresConnection) async throws -> [OrderRow] {
        try Self.orderRows(try await db.queries([Self.orderRowsStatement(filter, size: size, offset: offset)])[0])
    }

    /// How many orders match `filter`, counted up to `offset + orderCountLimit`: past that
    /// `more` is true and `total` is that bound.
    package func orderCount(_ filter: OrderFilter, offset: Int, on db: PostgresConnection) async throws -> (total: Int, more: Bool) {
        try Self.orderCount(try await db.queries([Self.orderCountStatement(filter, offset: offset)])[0], offset: offset)
    }

    /// ``orderRows(_:size:offset:on:)`` and ``orderCount(_:offset:on:)`` in one round trip:
    /// the whole orders page.
    package func orderPage(_ filter: OrderFilter, size: Int, offset: Int, on db: PostgresConnection) async throws -> (
        rows: [OrderRow], total: Int, more: Bool
    ) {
        let answers = try await db.queries([
            Self.orderRowsStatement(filter, size: size, offset: offset), Self.orderCountStatement(filter, offset: offset),
        ])
        let count = try Self.orderCount(answers[1], offset: offset)
        return (try Self.orderRows(answers[0]), count.total, count.more)
    }

    private static func orderRowsStatement(_ filter: OrderFilter, size: Int, offset: Int) -> PostgresStatement {
        PostgresStatement(
            """
            SELECT o.id, o.order_number, o.status, u.email, o.total_cents, o.currency, o.created_at, o.payment_flag
            \(matchingOrders)
            ORDER BY o.created_at DESC, o.id LIMIT $8 OFFSET $9
            """, parameters(filter) + [size, offset])
    }

    private static func orderRows(_ rows: PostgresRows) throws -> [OrderRow] {
        try rows.map {
            OrderRow(
                id: try $0.decode(UUID.self, "id"), orderNumber: try $0.decode(String.self, "order_number"), status: try $0.decode(String.self, "status"),
                email: try $0.decode(String.self, "email"), totalCents: try $0.decode(Int.self, "total_cents"),
                currency: try $0.decode(String.self, "currency"), createdAt: try $0.decode(Date.self, "created_at"),
                paymentFlag: try $0.decode(String?.self, "payment_flag"))
        }
    }

    private static func orderCountStatement(_ filter: OrderFilter, offset: Int) -> PostgresStatement {
        PostgresStatement(
            "SELECT count(*) AS n FROM (SELECT 1 \(matchingOrders) LIMIT $8) AS found", parameters(filter) + [offset + orderCountLimit + 1])
    }

    private static func orderCount(_ rows: PostgresRows, offset: Int) throws -> (total: Int, more: Bool) {
        let bound = offset + orderCountLimit
        let counted = try rows[0].decode(Int.self, "n")
        return (min(counted, bound), counted > bound)
    }

    /// The orders `OrderFilter` matches, from `$1` to `$7` (``parameters(_:)``). Each filter is a
    /// fixed clause that is off when its parameter is NULL.
    private static let matchingOrders = """
        FROM orders o JOIN users u ON u.id = o.user_id
        WHERE ($1::text IS NULL OR o.status = $1)
          AND ($2::timestamptz IS NULL OR o.created_at >= $2)
          AND ($3::timestamptz IS NULL OR o.created_at < $3)
          AND ($4::text IS NULL OR lower(u.email) = lower($4))
          AND ($5::text IS NULL OR o.order_number = $5)
          AND ($6::int8 IS NULL OR o.total_cents >= $6)
          AND ($7::int8 IS NULL OR o.total_cents <= $7)
        """

    /// `filter`'s values for ``matchingOrders``, in order.
    private static func parameters(_ filter: OrderFilter) -> [any PostgresEncodable] {
        [filter.status, filter.from, filter.to, filter.email, filter.orderNumber, filter.minTotalCents, filter.maxTotalCents]
    }

    /// Orders placed per minute over the last `minutes` minutes, oldest first, zeros included.
    /// Reads only those minutes' orders (`orders_created_idx`): the overview asks every few
    /// seconds while it is open, whatever the size of the table.
    package func ordersPerMinute(minutes: Int, on pool: PostgresPool) async throws -> [Int] {
        try await pool.withConnection { try await ordersPerMinute(minutes: minutes, on: $0) }
    }

    /// The orders per minute read on session `db`.
    package func ordersPerMinute(minutes: Int, on db: PostgresConnection) async throws -> [Int] {
        let rows = try await db.query(
            """
            WITH placed AS (
              SELECT date_trunc('minute', created_at) AS minute, count(*) AS placed FROM orders
              WHERE created_at >= date_trunc('minute', now()) - make_interval(mins => $1::int4 - 1)
                AND created_at < date_trunc('minute', now()) + interval '1 minute'
              GROUP BY 1
            )
            SELECT m.minute, coalesce(placed.placed, 0) AS placed
            FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1::int4 - 1), date_trunc('minute', now()), interval '1 minute') AS m(minute)
            LEFT JOIN placed ON placed.minute = m.minute
            ORDER BY m.minute
            """, [minutes])
        return try rows.map { try $0.decode(Int.self, "placed") }
    }

    /// Everything about one order besides its lines and history (``OrderStore/order``).
    package struct OrderFacts: Sendable {
        package struct Reservation: Sendable {
            package let sku: String
            package let quantity: Int
            package let status: String
        }
        package struct Payment: Sendable {
            package let status: String
            package let provider: String
            package let reference: String?
            package let amountCents: Int
            package let refundedCents: Int
            package let failureReason: String?
        }
        package struct Notification: Sendable {
            package let channel: String
            package let template: String
            package let recipient: String
            package let status: String
            package let createdAt: Date
        }
        package let customerId: UUID
        package let customerEmail: String
        package let traceparent: String?
        package let reservations: [Reservation]
        package let payment: Payment?
        package let notifications: [Notification]
    }

    /// The facts of order `id`; nil when there is no such order.
    package func facts(of id: UUID, on pool: PostgresPool) async throws -> OrderFacts? {
        try await pool.withConnection { try await facts(of: id, on: $0) }
    }

    /// The facts of order `id` read on session `db`; nil when there is no such order.
    package func facts(of id: UUID, on db: PostgresConnection) async throws -> OrderFacts? {
        guard
            let head = try await db.query("SELECT o.user_id, u.email, o.trace_parent FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1", [id])
                .first
        else { return nil }
        let reservations = try await db.query(
            "SELECT p.sku, r.quantity, r.status FROM stock_reservations r JOIN products p ON p.id = r.product_id WHERE r.order_id = $1 ORDER BY p.sku", [id]
        ).map {
            OrderFacts.Reservation(
                sku: try $0.decode(String.self, "sku"), quantity: try $0.decode(Int.self, "quantity"), status: try $0.decode(String.self, "status"))
        }
        let payment = try await db.query(
            "SELECT status, provider, provider_reference, amount_cents, refunded_cents, failure_reason FROM payments WHERE order_id = $1", [id]
        ).first.map {
            OrderFacts.Payment(
                status: try $0.decode(String.self, "status"), provider: try $0.decode(String.self, "provider"),
                reference: try $0.decode(String?.self, "provider_reference"), amountCents: try $0.decode(Int.self, "amount_cents"),
                refundedCents: try $0.decode(Int.self, "refunded_cents"), failureReason: try $0.decode(String?.self, "failure_reason"))
        }
        let notifications = try await db.query(
            "SELECT channel, template, recipient, status, created_at FROM notifications WHERE order_id = $1 ORDER BY created_at, id LIMIT 100", [id]
        ).map {
            OrderFacts.Notification(
                channel: try $0.decode(String.self, "channel"), template: try $0.decode(String.self, "template"),
                recipient: try $0.decode(String.self, "recipient"), status: try $0.decode(String.self, "status"),
                createdAt: try $0.decode(Date.self, "created_at"))
        }
        return OrderFacts(
            customerId: try head.decode(UUID.self, "user_id"), customerEmail: try head.decode(String.self, "email"),
            traceparent: try head.decode(String?.self, "trace_parent"), reservations: reservations, payment: payment, notifications: notifications)
    }

    // MARK: Catalog and accounts

    /// A page of products, active or not, newest first: every product, or `sellerId`'s only.
    /// `text` matches the name or SKU.
    package func products(sellerId: UUID?, text: String?, size: Int, offset: Int, on pool: PostgresPool) async throws -> (
        products: [CatalogStore.Product], total: Int
    ) {
        let found = try await pool.page(
            select: CatalogStore.columns,
            """
            FROM products
            WHERE ($1::uuid IS NULL OR seller_id = $1) AND ($2::text IS NULL OR name ILIKE '%' || $2 || '%' OR sku ILIKE '%' || $2 || '%')
            """, orderBy: "created_at DESC, id", [sellerId, text], size: size, offset: offset)
        return (try found.rows.map(CatalogStore.Product.init), found.total)
    }

    /// One product, active or not, when `sellerId` is nil or owns it.
    package func product(_ id: UUID, sellerId: UUID?, on pool: PostgresPool) async throws -> CatalogStore.Product? {
        try await pool.query("SELECT \(CatalogStore.columns) FROM products WHERE id = $1 AND ($2::uuid IS NULL OR seller_id = $2)", [id, sellerId]).first.map(
            CatalogStore.Product.init)
    }

    /// A page of open accounts whose email or name contains `text`, by email.
    package func users(text: String?, size: Int, offset: Int, on pool: PostgresPool) async throws -> (users: [UserStore.User], total: Int) {
        let found = try await pool.page(
            select: UserStore.userColumns,
            """
            FROM users
            WHERE closed_at IS NULL AND ($1::text IS NULL OR email ILIKE '%' || $1 || '%' OR (first_name || ' ' || last_name) ILIKE '%' || $1 || '%')
            """, orderBy: "lower(email), id", [text], size: size, offset: offset)
        return (try found.rows.map(UserStore.User.init), found.total)
    }
}
