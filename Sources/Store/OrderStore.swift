import Domain
import Foundation
import Metrics
import Observability
import Postgres
import Units

/// The order aggregate's tables: `orders`, `order_items`, `order_status_history`. The only
/// place that writes them; every read of an order's body maps its rows here, once.
package struct OrderStore: Sendable {
    /// Creates the store.
    package init() {}

    // MARK: Records

    /// A postal address as an order keeps it.
    package struct Address: Codable, Sendable, Equatable {
        package let line1: String
        package let line2: String?
        package let city: String
        package let postalCode: String
        package let country: String

        package init(line1: String, line2: String?, city: String, postalCode: String, country: String) {
            self.line1 = line1
            self.line2 = line2
            self.city = city
            self.postalCode = postalCode
            self.country = country
        }
    }

    /// One line of an order.
    package struct Item: Codable, Sendable {
        package let productId: UUID
        package let name: String
        package let sku: String
        package let quantity: Int
        package let unitPriceCents: Int

        package init(productId: UUID, name: String, sku: String, quantity: Int, unitPriceCents: Int) {
            self.productId = productId
            self.name = name
            self.sku = sku
            self.quantity = quantity
            self.unitPriceCents = unitPriceCents
        }
    }

    /// One change of an order's status.
    package struct HistoryEntry: Codable, Sendable {
        package let fromStatus: String?
        package let toStatus: String
        package let reason: String?
        package let changedAt: Date
    }

    /// An order as the API shows it (snake_case JSON through ``EmporiumJSON``).
    package struct Order: Codable, Sendable {
        package let id: UUID
        package let orderNumber: String
        package let status: String
        package let cancellationReason: String?
        package let paymentMethod: String
        package let shippingAddress: Address
        package let items: [Item]
        package let subtotalCents: Int
        package let taxCents: Int
        package let shippingCents: Int
        package let totalCents: Int
        package let currency: String
        package let statusHistory: [HistoryEntry]
        package let createdAt: Date
        /// Set when the order's money needs an admin: `disputed`, `charge_missing` or
        /// `authorization_expired`.
        package var paymentFlag: String? = nil
    }

    /// A new order, priced.
    package struct NewOrder: Sendable {
        package let id: UUID
        package let orderNumber: String
        package let userId: UUID
        package let paymentMethod: String
        package let shippingAddress: Address
        package let items: [Item]
        package let subtotalCents: Int
        package let taxCents: Int
        package let shippingCents: Int
        package let totalCents: Int
        package let currency: String
        package let traceparent: String

        package init(
            id: UUID, orderNumber: String, userId: UUID, paymentMethod: String, shippingAddress: Address, items: [Item], subtotalCents: Int,
            taxCents: Int, shippingCents: Int, totalCents: Int, currency: String, traceparent: String
        ) {
            self.id = id
            self.orderNumber = orderNumber
            self.userId = userId
            self.paymentMethod = paymentMethod
            self.shippingAddress = shippingAddress
            self.items = items
            self.subtotalCents = subtotalCents
            self.taxCents = taxCents
            self.shippingCents = shippingCents
            self.totalCents = totalCents
            self.currency = currency
            self.traceparent = traceparent
        }
    }

    /// What the saga needs to know about an order that just moved.
    package struct Moved: Sendable {
        package let userId: UUID
        package let totalCents: Int
        package let currency: String
        package let paymentMethod: String
        package let from: OrderStatus
    }

    /// Where a batch moves one order, and why when it is a cancellation.
    package struct Move: Sendable, Equatable {
        package let target: OrderStatus
        package let reason: CancellationReason?

        /// A move to `target`, for `reason` when it cancels.
        package init(to target: OrderStatus, reason: CancellationReason? = nil) {
            self.target = target
            self.reason = reason
        }
    }

    // MARK: Writing

    /// Writes the order, its lines and its first history row in the caller's transaction;
    /// returns the order as it is stored. An order number another order already has (its
    /// random part collided: likely once among some tens of thousands of orders in a day) is
    /// replaced by a fresh one, without failing the transaction.
    package func create(_ order: NewOrder, on db: PostgresConnection) async throws -> Order {
        let address = try PostgresJSON(encoding: order.shippingAddress, encoder: EmporiumJSON.encoder())
        var orderNumber = order.orderNumber
        var created: Date?
        for _ in 0..<Self.orderNumberAttempts {
            created = try await db.query(
                Self.insertOrderSQL + " ON CONFLICT (order_number) DO NOTHING RETURNING created_at", Self.insertOrderParameters(order, orderNumber, address)
            ).first?.decode(Date.self, "created_at")
            if created != nil { break }
            orderNumber = Checkout.newOrderNumber()
        }
        guard let created else { throw OrderNumbersTaken(attempts: Self.orderNumberAttempts) }
        try await enqueueLinesAndHistory(of: order, on: db)
        return stored(order, number: orderNumber, created: created)
    }

    /// Writes the order, its lines and its first history row in the caller's transaction
    /// without a round trip of its own: all three go out with the transaction's next
    /// statement or its `COMMIT` (``PostgresConnection/enqueue(_:_:)``), as a placement that
    /// commits in two round trips needs. `created` must be the transaction's `now()` (from
    /// ``transactionTimeStatement``), the instant the history row is dated with. An order
    /// number another order already has fails that later statement and the transaction;
    /// ``isOrderNumberTaken(_:)`` tells that error apart, and the caller runs its transaction
    /// again with a fresh number (``create(_:on:)`` instead replaces the number in place, at
    /// the cost of a round trip).
    package func write(_ order: NewOrder, created: Date, on db: PostgresConnection) async throws -> Order {
        let address = try PostgresJSON(encoding: order.shippingAddress, encoder: EmporiumJSON.encoder())
        try await db.enqueue(Self.insertOrderSQL, Self.insertOrderParameters(order, order.orderNumber, address))
        try await enqueueLinesAndHistory(of: order, on: db)
        return stored(order, number: order.orderNumber, created: created)
    }

    private static let insertOrderSQL = """
        INSERT INTO orders (id, order_number, user_id, status, payment_method, shipping_address, subtotal_cents, tax_cents, shipping_cents, total_cents, currency, trace_parent)
        VALUES ($1, $2, $3, 'PENDING', $4, $5, $6, $7, $8, $9, $10, $11)
        """

    private static func insertOrderParameters(_ order: NewOrder, _ orderNumber: String, _ address: PostgresJSON) -> [any PostgresEncodable] {
        [
            order.id, orderNumber, order.userId, order.paymentMethod, address, order.subtotalCents, order.taxCents, order.shippingCents,
            order.totalCents, order.currency, order.traceparent,
        ]
    }

    /// The transaction's timestamp (`now()`), which a new order and its first history row are
    /// dated with: for ``PostgresConnection/queries(_:)`` with the caller's other reads.
    package static let transactionTimeStatement = PostgresStatement("SELECT now() AS now")

    /// Reads the answer to ``transactionTimeStatement``.
    package static func transactionTime(from rows: PostgresRows) throws -> Date {
        try rows[0].decode(Date.self, "now")
    }

    /// Whether `error` is an order number that another order already has (the unique index
    /// on `orders.order_number`), which a fresh number avoids.
    package static func isOrderNumberTaken(_ error: any Error) -> Bool {
        guard let error = error as? PostgresError else { return false }
        return error.sqlState == "23505" && error.constraint == "orders_order_number_key"
    }

    /// The lines and the first history row, to go out with the caller's next statement or COMMIT.
    private func enqueueLinesAndHistory(of order: NewOrder, on db: PostgresConnection) async throws {
        try await db.enqueue(
            """
            INSERT INTO order_items (id, order_id, product_id, product_name, sku, quantity, unit_price_cents, currency)
            SELECT gen_random_uuid(), $1, item.product_id, item.name, item.sku, item.quantity, item.price, $7
            FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int4[], $6::int8[]) AS item(product_id, name, sku, quantity, price)
            """,
            [
                order.id, order.items.map(\.productId), order.items.map(\.name), order.items.map(\.sku), order.items.map { Int32($0.quantity) },
                order.items.map(\.unitPriceCents), order.currency,
            ])
        // Dated now(), the transaction's start, as the order is: the same instant.
        try await db.enqueue("INSERT INTO order_status_history (order_id, from_status, to_status) VALUES ($1, NULL, 'PENDING')", [order.id])
    }

    /// The order as written: PENDING, with its first history row.
    private func stored(_ order: NewOrder, number orderNumber: String, created: Date) -> Order {
        Order(
            id: order.id, orderNumber: orderNumber, status: OrderStatus.pending.rawValue, cancellationReason: nil, paymentMethod: order.paymentMethod,
            shippingAddress: order.shippingAddress, items: order.items, subtotalCents: order.subtotalCents, taxCents: order.taxCents,
            shippingCents: order.shippingCents, totalCents: order.totalCents, currency: order.currency,
            statusHistory: [HistoryEntry(fromStatus: nil, toStatus: OrderStatus.pending.rawValue, reason: nil, changedAt: created)], createdAt: created)
    }

    /// Order numbers drawn for one order before giving up (each collides with a chance of
    /// about one in 30,000 on a busy day's table: five in a row do not happen).
    package static let orderNumberAttempts = 5

    /// Every order number drawn for an order was taken.
    package struct OrderNumbersTaken: Error, CustomStringConvertible {
        package let attempts: Int
        package var description: String { "\(attempts) order numbers drawn in a row were already taken" }
    }

    // MARK: Moving through the saga (one order, or a batch in one statement)

    /// Moves an order to `target` if, and only if, its state allows it (the state machine's
    /// `allowedSources`), and records the change in its history; nil when the order is not
    /// in an allowed state. Records `orders_finalized_total` and `saga_step_seconds`.
    package func transition(_ orderId: UUID, to target: OrderStatus, reason: CancellationReason? = nil, on db: PostgresConnection) async throws -> Moved? {
        let allowed = OrderStatus.allowedSources(of: target).map(\.rawValue)
        guard
            let row = try await db.query(
                """
                WITH previous AS (SELECT id, status FROM orders WHERE id = $1 FOR NO KEY UPDATE)
                UPDATE orders o SET status = $2, cancellation_reason = $3, updated_at = now()
                FROM previous WHERE o.id = previous.id AND previous.status = ANY($4)
                RETURNING o.user_id, o.total_cents, o.currency, o.payment_method, previous.status AS from_status,
                          extract(epoch FROM now() - o.created_at)::float8 AS age_seconds
                """,
                [orderId, target.rawValue, reason?.rawValue, allowed]
            ).first
        else { return nil }
        let from = try row.decode(String.self, "from_status")
        try await db.enqueue(
            "INSERT INTO order_status_history (order_id, from_status, to_status, reason) VALUES ($1, $2, $3, $4)",
            [orderId, from, target.rawValue, reason?.rawValue])
        SagaMetrics.reached(target, ageSeconds: try row.decode(Double.self, "age_seconds"))
        return try moved(row, from: from)
    }

    /// Makes each order's move as ``transition(_:to:reason:on:)`` would, for a whole batch in
    /// one round trip: the orders' rows locked in id order (so two batches in flight queue on
    /// the first order they share instead of deadlocking), every allowed move made and its
    /// history row written in the same statement. Keyed by order, so one order moves at most
    /// once. Returns the orders that moved; an order missing or in a state that does not
    /// allow its move is absent, as `transition` answers nil for it.
    package func transitions(_ moves: [UUID: Move], on db: PostgresConnection) async throws -> [UUID: Moved] {
        guard !moves.isEmpty else { return [:] }
        let batch = Array(moves)
        // The allowed (from, to) pairs of the batch's targets: the state machine's rule, which
        // the statement checks each order's locked state against.
        let pairs = Set(batch.map(\.value.target)).flatMap { target in OrderStatus.allowedSources(of: target).map { ($0.rawValue, target.rawValue) } }
        let rows = try await db.query(
            """
            WITH wanted AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]) AS w(id, target, reason)
            ), previous AS (
                SELECT id, status FROM orders WHERE id IN (SELECT id FROM wanted) ORDER BY id FOR NO KEY UPDATE
            ), moved AS (
                UPDATE orders o SET status = w.target, cancellation_reason = w.reason, updated_at = now()
                FROM previous p JOIN wanted w ON w.id = p.id
                WHERE o.id = p.id AND (p.status, w.target) IN (SELECT * FROM unnest($4::text[], $5::text[]))
                RETURNING o.id, o.user_id, o.total_cents, o.currency, o.payment_method, p.status AS from_status,
                          w.target AS to_status, w.reason, extract(epoch FROM now() - o.created_at)::float8 AS age_seconds
            ), history AS (
                INSERT INTO order_status_history (order_id, from_status, to_status, reason)
                SELECT id, from_status, to_status, reason FROM moved
            )
            SELECT * FROM moved
            """,
            [batch.map(\.key), batch.map(\.value.target.rawValue), batch.map(\.value.reason?.rawValue), pairs.map(\.0), pairs.map(\.1)])
        var result: [UUID: Moved] = [:]
        for row in rows {
            let orderId = try row.decode(UUID.self, "id")
            guard let target = moves[orderId]?.target else { continue }
            SagaMetrics.reached(target, ageSeconds: try row.decode(Double.self, "age_seconds"))
            result[orderId] = try moved(row, from: try row.decode(String.self, "from_status"))
        }
        return result
    }

    private func moved(_ row: PostgresRow, from: String) throws -> Moved {
        Moved(
            userId: try row.decode(UUID.self, "user_id"), totalCents: try row.decode(Int.self, "total_cents"),
            currency: try row.decode(String.self, "currency"), paymentMethod: try row.decode(String.self, "payment_method"),
            from: OrderStatus(rawValue: from) ?? .pending)
    }

    /// Flags the order for an admin (`disputed`, `charge_missing`, `authorization_expired`);
    /// false when it was flagged so already.
    @discardableResult
    package func flag(_ orderId: UUID, _ flag: String, on db: PostgresConnection) async throws -> Bool {
        try await db.query(
            "UPDATE orders SET payment_flag = $2, updated_at = now() WHERE id = $1 AND payment_flag IS DISTINCT FROM $2", [orderId, flag]
        ).affectedRows == 1
    }

    // MARK: Reading orders

    static let columns = """
        id, order_number, status, cancellation_reason, payment_method, shipping_address, subtotal_cents, tax_cents, shipping_cents, total_cents, currency, created_at,
        payment_flag
        """

    /// The order with its lines and history; nil when missing or not owned by `owner`
    /// (`nil` owner: any order, for admins).
    package func order(_ id: UUID, visibleTo owner: UUID?, on db: PostgresConnection) async throws -> Order? {
        let rows = try await db.query("SELECT \(Self.columns) FROM orders WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)", [id, owner])
        return try await orders(rows, db).first
    }

    /// A page of orders, newest first: `owner`'s, or every order for nil. Three round trips
    /// whatever the page's size: the orders with their count, their lines, their history.
    package func page(of owner: UUID?, size: Int, offset: Int, on db: PostgresConnection) async throws -> (orders: [Order], total: Int) {
        let found = try await db.page(
            select: Self.columns, "FROM orders WHERE ($1::uuid IS NULL OR user_id = $1)", orderBy: "created_at DESC, id", [owner],
            size: size, offset: offset)
        return (try await orders(found.rows, db), found.total)
    }

    private func orders(_ rows: PostgresRows, _ db: PostgresConnection) async throws -> [Order] {
        let ids = try rows.map { try $0.decode(UUID.self, "id") }
        guard !ids.isEmpty else { return [] }
        var items: [UUID: [Item]] = [:]
        for row in try await db.query(
            "SELECT order_id, product_id, product_name, sku, quantity, unit_price_cents FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, product_id",
            [ids])
        {
            items[try row.decode(UUID.self, "order_id"), default: []].append(
                Item(
                    productId: try row.decode(UUID.self, "product_id"), name: try row.decode(String.self, "product_name"),
                    sku: try row.decode(String.self, "sku"),
                    quantity: try row.decode(Int.self, "quantity"), unitPriceCents: try row.decode(Int.self, "unit_price_cents")))
        }
        var history: [UUID: [HistoryEntry]] = [:]
        for row in try await db.query(
            "SELECT order_id, from_status, to_status, reason, changed_at FROM order_status_history WHERE order_id = ANY($1) ORDER BY order_id, id", [ids])
        {
            history[try row.decode(UUID.self, "order_id"), default: []].append(
                HistoryEntry(
                    fromStatus: try row.decode(String?.self, "from_status"), toStatus: try row.decode(String.self, "to_status"),
                    reason: try row.decode(String?.self, "reason"), changedAt: try row.decode(Date.self, "changed_at")))
        }
        return try rows.map { row in
            let id = try row.decode(UUID.self, "id")
            return Order(
                id: id, orderNumber: try row.decode(String.self, "order_number"), status: try row.decode(String.self, "status"),
                cancellationReason: try row.decode(String?.self, "cancellation_reason"), paymentMethod: try row.decode(String.self, "payment_method"),
                shippingAddress: try row.decode(PostgresJSON.self, "shipping_address").decode(as: Address.self, decoder: EmporiumJSON.decoder()),
                items: items[id] ?? [], subtotalCents: try row.decode(Int.self, "subtotal_cents"), taxCents: try row.decode(Int.self, "tax_cents"),
                shippingCents: try row.decode(Int.self, "shipping_cents"), totalCents: try row.decode(Int.self, "total_cents"),
                currency: try row.decode(String.self, "currency"),
                statusHistory: history[id] ?? [], createdAt: try row.decode(Date.self, "created_at"),
                paymentFlag: try row.decode(String?.self, "payment_flag"))
        }
    }

    /// The order's owner and trace, when it exists and (with `owner`) belongs to them.
    package func ownerAndTrace(_ id: UUID, owner: UUID?, on db: PostgresConnection) async throws -> (userId: UUID, traceparent: String?)? {
        guard let row = try await db.query("SELECT user_id, trace_parent FROM orders WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)", [id, owner]).first
        else { return nil }
        return (try row.decode(UUID.self, "user_id"), try row.decode(String?.self, "trace_parent"))
    }

    /// The order's status (and, with `lock`, its row locked `FOR NO KEY UPDATE` until the
    /// transaction ends); nil when there is no such order.
    package func status(of id: UUID, lock: Bool = false, on db: PostgresConnection) async throws -> OrderStatus? {
        let sql = lock ? "SELECT status FROM orders WHERE id = $1 FOR NO KEY UPDATE" : "SELECT status FROM orders WHERE id = $1"
        return try await db.query(sql, [id]).first.flatMap { OrderStatus(rawValue: try $0.decode(String.self, "status")) }
    }

    /// The orders' statuses, read in one statement with their rows locked in id order (a stock
    /// batch's orders, after the products they take). Unknown ids are absent.
    package func lockedStatuses(of ids: [UUID], on db: PostgresConnection) async throws -> [UUID: OrderStatus] {
        var statuses: [UUID: OrderStatus] = [:]
        for row in try await db.query("SELECT id, status FROM orders WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", [ids]) {
            statuses[try row.decode(UUID.self, "id")] = OrderStatus(rawValue: try row.decode(String.self, "status"))
        }
        return statuses
    }

    /// What the payment worker needs to decide about an order's charge.
    package struct PaymentFacts: Sendable {
        package let userId: UUID
        package let status: OrderStatus
        package let totalCents: Int
        package let currency: String
        package let paymentMethod: String
        /// Whether it ever waited for payment (was a charge ever requested).
        package let reachedPayment: Bool
        /// Seconds since it was placed.
        package let ageSeconds: Double
    }

    /// The facts of order `id` for its payment; nil when there is no such order.
    package func paymentFacts(_ id: UUID, on db: PostgresConnection) async throws -> PaymentFacts? {
        try await paymentFacts([id], on: db)[id]
    }

    /// The facts of each of the orders (a payment batch's) that exists, by id, in one statement.
    ///
    /// The history is probed per order through a `LATERAL … LIMIT 1`, not an `EXISTS`: for
    /// `id = ANY($1)` the generic plan expects about ten orders and turns an `EXISTS` into a
    /// hashed subplan that scans the whole history (163 ms on a bench database of 25,000
    /// orders, against well under a millisecond probing its index).
    package func paymentFacts(_ ids: [UUID], on db: PostgresConnection) async throws -> [UUID: PaymentFacts] {
        let rows = try await db.query(
            """
            SELECT o.id, o.user_id, o.status, o.total_cents, o.currency, o.payment_method,
                   extract(epoch FROM now() - o.created_at)::float8 AS age_seconds, reached.order_id IS NOT NULL AS reached_payment
            FROM orders o
            LEFT JOIN LATERAL (
                SELECT h.order_id FROM order_status_history h WHERE h.order_id = o.id AND h.to_status = 'AWAITING_PAYMENT' LIMIT 1
            ) AS reached ON true
            WHERE o.id = ANY($1)
            """, [ids])
        var facts: [UUID: PaymentFacts] = [:]
        for row in rows { facts[try row.decode(UUID.self, "id")] = try paymentFacts(row) }
        return facts
    }

    private func paymentFacts(_ row: PostgresRow) throws -> PaymentFacts {
        PaymentFacts(
            userId: try row.decode(UUID.self, "user_id"), status: OrderStatus(rawValue: try row.decode(String.self, "status")) ?? .pending,
            totalCents: try row.decode(Int.self, "total_cents"), currency: try row.decode(String.self, "currency"),
            paymentMethod: try row.decode(String.self, "payment_method"), reachedPayment: try row.decode(Bool.self, "reached_payment"),
            ageSeconds: try row.decode(Double.self, "age_seconds"))
    }

    /// The lines of order `id` as the stock worker reserves them.
    package func lines(of id: UUID, on db: PostgresConnection) async throws -> [OrderLine] {
        try await db.query("SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY product_id", [id]).map {
            OrderLine(productId: try $0.decode(UUID.self, "product_id"), quantity: try $0.decode(Int.self, "quantity"))
        }
    }

    /// A line as a refund prices it: what was paid per unit and how many.
    package struct PricedLine: Sendable {
        package let productId: UUID
        package let quantity: Int
        package let unitPriceCents: Int
    }

    /// The priced lines of order `id`.
    package func pricedLines(of id: UUID, on db: PostgresConnection) async throws -> [PricedLine] {
        try await db.query("SELECT product_id, quantity, unit_price_cents FROM order_items WHERE order_id = $1 ORDER BY product_id", [id]).map {
            PricedLine(
                productId: try $0.decode(UUID.self, "product_id"), quantity: try $0.decode(Int.self, "quantity"),
                unitPriceCents: try $0.decode(Int.self, "unit_price_cents"))
        }
    }

    /// How many orders `userId` placed with `method` that still wait for payment.
    package func unpaidOrders(of userId: UUID, method: String, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            "SELECT count(*) AS n FROM orders WHERE user_id = $1 AND payment_method = $2 AND status IN ('PENDING', 'AWAITING_PAYMENT')",
            [userId, method])[0].decode(Int.self, "n")
    }

    /// Orders waiting for payment longer than their timeout (card orders `cardTimeout`,
    /// `manual` ones `manualTimeout`), oldest first, locked `FOR UPDATE SKIP LOCKED` so
    /// replicas share them.
    package func expiredAwaitingPayment(cardTimeout: Duration, manualTimeout: Duration, limit: Int, on db: PostgresConnection) async throws -> [(
        id: UUID, traceparent: String?
    )] {
        try await db.query(
            """
            SELECT id, trace_parent FROM orders
            WHERE status = 'AWAITING_PAYMENT'
              AND updated_at < now() - make_interval(secs => CASE WHEN payment_method = $3 THEN $2 ELSE $1 END)
            ORDER BY updated_at LIMIT $4 FOR UPDATE SKIP LOCKED
            """,
            [cardTimeout.secondsWithFraction, manualTimeout.secondsWithFraction, PaymentIds.manualMethod, limit]
        ).map { (try $0.decode(UUID.self, "id"), try $0.decode(String?.self, "trace_parent")) }
    }

    /// What a notification about order `id` says, with its customer.
    package struct NotificationFacts: Sendable {
        package let userId: UUID
        package let orderNumber: String
        package let totalCents: Int
        package let currency: String
        package let email: String
        package let firstName: String
    }

    /// The notification facts of order `id`; nil when there is no such order.
    package func notificationFacts(_ id: UUID, on db: PostgresConnection) async throws -> NotificationFacts? {
        try await notificationFacts(of: [id], on: db)[id]
    }

    /// The notification facts of the orders `ids`, in one statement (a notification batch's
    /// orders); an order that does not exist is absent.
    package func notificationFacts(of ids: [UUID], on db: PostgresConnection) async throws -> [UUID: NotificationFacts] {
        guard !ids.isEmpty else { return [:] }
        return try Self.notificationFacts(from: try await db.queries([Self.notificationFactsStatement(of: ids)])[0])
    }

    /// The statement that reads the notification facts of the orders `ids`, to go out with a
    /// batch's other reads; ``notificationFacts(from:)`` reads its answer.
    package static func notificationFactsStatement(of ids: [UUID]) -> PostgresStatement {
        PostgresStatement(
            """
            SELECT o.id, o.user_id, o.order_number, o.total_cents, o.currency, u.email, u.first_name
            FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = ANY($1)
            """, [ids])
    }

    /// Reads the answer to ``notificationFactsStatement(of:)``, by order.
    package static func notificationFacts(from rows: PostgresRows) throws -> [UUID: NotificationFacts] {
        var facts: [UUID: NotificationFacts] = [:]
        for row in rows {
            facts[try row.decode(UUID.self, "id")] = NotificationFacts(
                userId: try row.decode(UUID.self, "user_id"), orderNumber: try row.decode(String.self, "order_number"),
                totalCents: try row.decode(Int.self, "total_cents"), currency: try row.decode(String.self, "currency"),
                email: try row.decode(String.self, "email"), firstName: try row.decode(String.self, "first_name"))
        }
        return facts
    }

    /// Whether `userId` has a delivered order containing `productId` (the right to review it).
    package func hasDelivered(_ productId: UUID, to userId: UUID, on db: PostgresConnection) async throws -> Bool {
        try await db.query(
            """
            SELECT 1 FROM orders o JOIN order_items i ON i.order_id = o.id
            WHERE o.user_id = $1 AND i.product_id = $2 AND o.status = 'DELIVERED' LIMIT 1
            """, [userId, productId]
        ).count == 1
    }

    /// Order count per status.
    package func countsByStatus(on pool: PostgresPool) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await pool.query("SELECT status, count(*) AS n FROM orders GROUP BY status") {
            counts[try row.decode(String.self, "status")] = try row.decode(Int.self, "n")
        }
        return counts
    }
}
