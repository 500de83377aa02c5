import Crypto
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Messaging
import Metrics
import Postgres

/// Places the cart as an order and reads the caller's orders.
struct OrdersController: Sendable {
    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    let idempotency: IdempotencyStore
    let pricing: Pricing
    let cartExpiry: Duration
    /// Manual-payment orders a user may have waiting for payment at once
    /// (`MAX_UNPAID_ORDERS_PER_USER`): each holds its stock until paid or expired.
    let maxUnpaidOrders: Int

    /// Tax and shipping, computed on the server from configuration.
    struct Pricing: Sendable {
        var taxRateBasisPoints = 0
        var shippingFlatCents = 0
        var freeShippingOverCents: Int?

        /// (tax, shipping) for a subtotal; tax rounds half up to the cent.
        func charges(subtotal: Int) -> (tax: Int, shipping: Int) {
            let tax = (subtotal * taxRateBasisPoints + 5_000) / 10_000
            let free = freeShippingOverCents.map { subtotal >= $0 } ?? false
            return (tax, free ? 0 : shippingFlatCents)
        }
    }

    struct ShippingAddress: Codable, Sendable {
        let line1: String
        let line2: String?
        let city: String
        let postalCode: String
        let country: String
    }

    struct PlaceOrder: Decodable {
        let paymentMethod: String
        let shippingAddress: ShippingAddress
        /// The total the client agrees to pay at the current prices: when a price changed since
        /// a line was added, the order is placed only if this matches (else 409 with the new prices).
        let expectedTotalCents: Int?
    }

    struct ItemBody: Encodable, Sendable {
        let productId: UUID
        let name: String
        let sku: String
        let quantity: Int
        let unitPriceCents: Int
    }

    struct HistoryBody: Encodable, Sendable {
        let fromStatus: String?
        let toStatus: String
        let reason: String?
        let changedAt: Date
    }

    struct OrderBody: ResponseEncodable, Sendable {
        let id: UUID
        let orderNumber: String
        let status: String
        let cancellationReason: String?
        let paymentMethod: String
        let shippingAddress: ShippingAddress
        let items: [ItemBody]
        let subtotalCents: Int
        let taxCents: Int
        let shippingCents: Int
        let totalCents: Int
        let currency: String
        let statusHistory: [HistoryBody]
        let createdAt: Date
    }

    func register(on group: RouterGroup<AppRequestContext>) {
        group.post("orders") { request, context in try await place(request, context) }
        group.get("orders") { request, context in try await list(request, context) }
        group.get("orders/:id") { _, context in try await get(context) }
        group.post("orders/:id/cancel") { _, context in try await cancel(context) }
        group.put("orders/:id/status") { request, context in try await changeStatus(request, context) }
    }

    // MARK: Changes after placement

    struct StatusChange: Decodable {
        let status: String
    }

    /// The owner (or an ADMIN) cancels an order before it ships. The saga does the rest:
    /// the stock worker releases the reservation and the payment worker refunds a charge.
    private func cancel(_ context: AppRequestContext) async throws -> OrderBody {
        let identity = try context.requireIdentity()
        let id = try context.parameters.requireUUID("id", "order")
        try await move(id, to: .cancelled, reason: .customer, owner: identity.role.isAdmin ? nil : identity.userId,
                       eventType: EventType.orderCancelled, refused: "the order can no longer be cancelled (it has shipped or is already cancelled)")
        return try await load(id)!
    }

    /// ADMIN moves an order to SHIPPED or DELIVERED, only along allowed transitions.
    private func changeStatus(_ request: Request, _ context: AppRequestContext) async throws -> OrderBody {
        let identity = try context.requireIdentity()
        guard identity.role.isAdmin else { throw APIError.forbidden("only admins change an order's status") }
        let id = try context.parameters.requireUUID("id", "order")
        let (input, _) = try await request.decodeJSON(StatusChange.self, context: context)
        let eventType: String
        switch OrderStatus(rawValue: input.status) {
        case .shipped: eventType = EventType.orderShipped
        case .delivered: eventType = EventType.orderDelivered
        default: throw APIError.invalid([("status", "must be SHIPPED or DELIVERED; other states are reached through the checkout itself")])
        }
        let target = OrderStatus(rawValue: input.status)!
        try await move(id, to: target, reason: nil, owner: nil, eventType: eventType,
                       refused: "an order cannot move to \(target.rawValue) from its current status")
        return try await load(id)!
    }

    /// Applies a transition and writes its event to the outbox in one transaction; 404 when
    /// the order is missing (or not `owner`'s), 409 when its state does not allow it.
    private func move(_ id: UUID, to target: OrderStatus, reason: CancellationReason?, owner: UUID?, eventType: String, refused: String) async throws {
        let event = try await pool.withTransaction { db -> EventEnvelope in
            guard let row = try await db.query("SELECT user_id, trace_parent FROM orders WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)", [id, owner]).first else {
                throw APIError.notFound("order")
            }
            guard try await OrderTransition.apply(id, to: target, reason: reason, on: db) != nil else { throw APIError.conflict(refused) }
            let event = try EventEnvelope(type: eventType, orderId: id,
                                          payload: OrderOutcome(orderId: id, userId: try row.decode(UUID.self, "user_id"), reason: reason?.rawValue),
                                          traceparent: try row.decode(String?.self, "trace_parent"))
            try await Outbox.append(event, exchange: names.eventsExchange, on: db)
            return event
        }
        outbox.publishSoon([event])
    }

    // MARK: Placement

    private func place(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let userId = try context.requireIdentity().userId
        guard let key = request.headers[HTTPField.Name("Idempotency-Key")!], !key.isEmpty else {
            throw APIError.badRequest("the Idempotency-Key header is required", errors: [.init(field: "Idempotency-Key", message: "required")])
        }
        guard FieldRules.length(key) <= 255 else { throw APIError.badRequest("the Idempotency-Key header is at most 255 characters") }
        let (input, raw) = try await request.decodeJSON(PlaceOrder.self, context: context)
        try validate(input)
        let hash = SHA256.hash(data: raw).map { String(format: "%02x", $0) }.joined()

        let token: IdempotencyStore.Token
        switch try await idempotency.claim(userId: userId, key: key, requestHash: hash) {
        case .replay(let status, let body):
            return jsonResponse(status: status, body: body, replayed: true)
        case .mismatch:
            // 409: the key's stored request conflicts with this one. (The IETF draft suggests
            // 422, which would tell a client following the schema that its body is invalid.)
            throw APIError.conflict("this Idempotency-Key was already used with a different request body")
        case .inFlight:
            throw APIError.conflict("a request with this Idempotency-Key is still being processed; retry shortly")
        case .acquired(let claim):
            token = claim
        }
        do {
            // The request span's context when tracing is on (its trace continues the client's);
            // otherwise the client's traceparent, or a new trace.
            let traceparent = EmporiumTracing.currentTraceparent() ?? TraceContext.parse(request.headers[HTTPField.Name("traceparent")!]) ?? TraceContext.new()
            let placement = try await pool.withTransaction { db -> Placement in
                switch try await createOrder(userId: userId, input: input, traceparent: traceparent, db) {
                case .placed(let order, let event):
                    let stored = try await idempotency.complete(token, status: 201, body: try EmporiumJSON.encoder().encode(order), on: db)
                    return .placed(stored, event)
                case .refused(let error):
                    // Committed without an order: the cart now shows the current prices.
                    return .refused(error)
                }
            }
            guard case .placed(let body, let event) = placement else {
                if case .refused(let error) = placement { throw error }
                throw APIError.conflict("the order was not placed")
            }
            outbox.publishSoon([event])
            var log = context.logger
            log[metadataKey: "order.id"] = "\(event.orderId.map { "\($0)" } ?? "-")"
            log[metadataKey: "trace.id"] = "\(traceID(ofTraceparent: traceparent) ?? "-")"
            log.info("order placed", metadata: ["event.type": "\(event.type)", "message.id": "\(event.id)"])
            Counter(label: "orders_placed_total").increment()
            return jsonResponse(status: 201, body: body, replayed: false)
        } catch is IdempotencyStore.ClaimLost {
            // This request was so slow that its claim was presumed abandoned and taken over;
            // its order was rolled back, and the request that took over answers for the key.
            throw APIError.conflict("a later request with this Idempotency-Key took over; retry to get its response")
        } catch {
            await idempotency.release(token)
            throw error
        }
    }

    private func validate(_ input: PlaceOrder) throws {
        var problems: [(String, String)] = []
        let method = input.paymentMethod
        if !FieldRules.isToken(method, extra: "_", max: 64) {
            problems.append(("payment_method", "must be a payment token such as tok_visa"))
        }
        if let expected = input.expectedTotalCents, expected < 0 {
            problems.append(("expected_total_cents", "must not be negative"))
        }
        let address = input.shippingAddress
        problems += AddressRules.problems(line1: address.line1, line2: address.line2, city: address.city, postalCode: address.postalCode,
                                          country: address.country, prefix: "shipping_address.")
        guard problems.isEmpty else { throw APIError.invalid(problems) }
    }

    /// What a placement transaction ends with: the order, or a refusal that still commits
    /// (the cart's lines re-priced to the current prices).
    private enum Placement {
        case placed(String, EventEnvelope)
        case refused(APIError)
    }

    private enum Created {
        case placed(OrderBody, EventEnvelope)
        case refused(APIError)
    }

    /// Writes the order, its lines, its first history row and its `order.placed` outbox row,
    /// and empties the cart, all in the caller's transaction. Each line is priced and checked
    /// against its product as it is now, in this transaction: an inactive product refuses the
    /// order (409 naming the line), and a price that changed since the line was added re-prices
    /// the cart and refuses the order (409 with the new prices) unless the client already
    /// agreed to the new total (`expected_total_cents`).
    private func createOrder(userId: UUID, input: PlaceOrder, traceparent: String, _ db: PostgresConnection) async throws -> Created {
        let cartId = try await CartController.cartId(for: userId, expiry: cartExpiry, on: db)
        // Locks the cart: two placements by the same user never take the same lines.
        try await db.query("SELECT id FROM carts WHERE id = $1 FOR NO KEY UPDATE", [cartId])
        if input.paymentMethod == PaymentIds.manualMethod {
            // A manual order holds its stock until paid or expired: a bounded number per user.
            let unpaid = try await db.query(
                "SELECT count(*) AS n FROM orders WHERE user_id = $1 AND payment_method = $2 AND status IN ('PENDING', 'AWAITING_PAYMENT')",
                [userId, PaymentIds.manualMethod])[0].decode(Int.self, "n")
            guard unpaid < maxUnpaidOrders else {
                throw APIError.conflict("\(unpaid) orders are already waiting for payment; pay or cancel one before placing another")
            }
        }
        let lines = try await db.query(
            """
            SELECT ci.id AS line_id, ci.product_id, p.name, p.sku, ci.quantity, ci.unit_price_cents AS captured_cents, p.price_cents AS current_cents,
                   p.currency, p.is_active
            FROM cart_items ci JOIN products p ON p.id = ci.product_id WHERE ci.cart_id = $1 ORDER BY ci.product_id
            """, [cartId])
        guard lines.count > 0 else { throw APIError.conflict("the cart is empty") }
        guard lines.count <= CartController.maxLines else { throw APIError.conflict("an order holds at most \(CartController.maxLines) lines") }
        var unavailable: [APIError.FieldError] = []
        var repriced: [APIError.FieldError] = []
        for line in lines {
            let productId = try line.decode(UUID.self, "product_id")
            let name = try line.decode(String.self, "name")
            if try !line.decode(Bool.self, "is_active") {
                unavailable.append(.init(field: "items.\(productId.uuidString.lowercased())", message: "\(name) is no longer sold; remove it from the cart"))
            }
            let captured = try line.decode(Int.self, "captured_cents"), current = try line.decode(Int.self, "current_cents")
            if captured != current {
                repriced.append(.init(field: "items.\(productId.uuidString.lowercased())",
                                      message: "\(name): the price changed from \(Money.format(captured)) to \(Money.format(current)) \(try line.decode(String.self, "currency"))"))
            }
        }
        guard unavailable.isEmpty else {
            throw APIError(status: .conflict, detail: "the cart holds products that are no longer sold", errors: unavailable)
        }
        var items: [ItemBody] = []
        var total = 0
        let currency = try lines[0].decode(String.self, "currency")
        for line in lines {
            let item = ItemBody(productId: try line.decode(UUID.self, "product_id"), name: try line.decode(String.self, "name"), sku: try line.decode(String.self, "sku"),
                                quantity: try line.decode(Int.self, "quantity"), unitPriceCents: try line.decode(Int.self, "current_cents"))
            guard try line.decode(String.self, "currency") == currency else { throw APIError.conflict("the cart mixes currencies") }
            guard let lineTotal = Money.lineTotal(unitCents: item.unitPriceCents, quantity: item.quantity),
                  case (let sum, false) = total.addingReportingOverflow(lineTotal) else { throw APIError.conflict("the order total is too large") }
            total = sum
            items.append(item)
        }
        let subtotal = total
        let (tax, shipping) = pricing.charges(subtotal: subtotal)
        guard case (let withTax, false) = subtotal.addingReportingOverflow(tax), case (let grand, false) = withTax.addingReportingOverflow(shipping) else {
            throw APIError.conflict("the order total is too large")
        }
        total = grand
        if let expected = input.expectedTotalCents, expected != total {
            return .refused(APIError(status: .conflict, detail: "the order total at the current prices is \(total), not \(expected)", errors: repriced))
        }
        if !repriced.isEmpty && input.expectedTotalCents == nil {
            // The cart takes the current prices now, so what the client sees next is what it pays.
            try await db.query(
                "UPDATE cart_items ci SET unit_price_cents = p.price_cents FROM products p WHERE ci.cart_id = $1 AND p.id = ci.product_id AND ci.unit_price_cents <> p.price_cents",
                [cartId])
            return .refused(APIError(
                status: .conflict,
                detail: "prices changed since the items were added; the cart now shows the current prices (total \(total)): place the order again, or send expected_total_cents",
                errors: repriced))
        }
        let orderId = UUID()
        let orderNumber = Self.newOrderNumber()
        let address = try PostgresJSON(encoding: input.shippingAddress, encoder: EmporiumJSON.encoder())
        let created = try await db.query(
            """
            INSERT INTO orders (id, order_number, user_id, status, payment_method, shipping_address, subtotal_cents, tax_cents, shipping_cents, total_cents, currency, trace_parent)
            VALUES ($1, $2, $3, 'PENDING', $4, $5, $6, $7, $8, $9, $10, $11) RETURNING created_at
            """, [orderId, orderNumber, userId, input.paymentMethod, address, subtotal, tax, shipping, total, currency, traceparent])[0].decode(Date.self, "created_at")
        for item in items {
            try await db.query(
                """
                INSERT INTO order_items (id, order_id, product_id, product_name, sku, quantity, unit_price_cents, currency)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """, [UUID(), orderId, item.productId, item.name, item.sku, item.quantity, item.unitPriceCents, currency])
        }
        let history = try await db.query(
            "INSERT INTO order_status_history (order_id, from_status, to_status) VALUES ($1, NULL, 'PENDING') RETURNING changed_at", [orderId])[0]
        try await db.query("DELETE FROM cart_items WHERE cart_id = $1", [cartId])
        let event = try EventEnvelope(
            type: EventType.orderPlaced, orderId: orderId,
            payload: OrderPlaced(orderId: orderId, userId: userId, totalCents: total, currency: currency, paymentMethod: input.paymentMethod,
                                 lines: items.map { OrderLine(productId: $0.productId, quantity: $0.quantity) }),
            traceparent: traceparent)
        try await Outbox.append(event, exchange: names.eventsExchange, on: db)
        let body = OrderBody(
            id: orderId, orderNumber: orderNumber, status: OrderStatus.pending.rawValue, cancellationReason: nil, paymentMethod: input.paymentMethod,
            shippingAddress: input.shippingAddress, items: items, subtotalCents: subtotal, taxCents: tax, shippingCents: shipping, totalCents: total, currency: currency,
            statusHistory: [HistoryBody(fromStatus: nil, toStatus: OrderStatus.pending.rawValue, reason: nil, changedAt: try history.decode(Date.self, "changed_at"))],
            createdAt: created)
        return .placed(body, event)
    }

    /// `EMP-YYMMDD-XXXXXX`: readable on the phone, unique by its random part (and the index).
    static func newOrderNumber(now: Date = Date()) -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        let day = now.formatted(.iso8601.year().month().day().dateSeparator(.omitted)).dropFirst(2)
        return "EMP-\(day)-" + String((0..<6).map { _ in alphabet.randomElement()! })
    }

    private func jsonResponse(status: Int, body: String, replayed: Bool) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if replayed { headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    // MARK: Reading

    /// The caller's orders, newest first; an ADMIN sees every order. Three statements per
    /// page, whatever its size: the orders, their lines, their history.
    private func list(_ request: Request, _ context: AppRequestContext) async throws -> PageBody<OrderBody> {
        let identity = try context.requireIdentity()
        let page = try Page(request)
        return try await pool.withConnection { db in
            let rows = try await db.query(
                """
                SELECT \(Self.orderColumns), count(*) OVER () AS total FROM orders
                WHERE ($1::uuid IS NULL OR user_id = $1) ORDER BY created_at DESC, id LIMIT $2 OFFSET $3
                """, [identity.role.isAdmin ? nil : identity.userId, page.size, page.offset])
            return PageBody(items: try await orders(rows, db), page: page.number, pageSize: page.size, total: try rows.first?.decode(Int.self, "total") ?? 0)
        }
    }

    private func get(_ context: AppRequestContext) async throws -> OrderBody {
        let identity = try context.requireIdentity()
        let id = try context.parameters.requireUUID("id", "order")
        // Another user's order is indistinguishable from a missing one.
        guard let order = try await load(id, visibleTo: identity.role.isAdmin ? nil : identity.userId) else { throw APIError.notFound("order") }
        return order
    }

    static let orderColumns = """
        id, order_number, status, cancellation_reason, payment_method, shipping_address, subtotal_cents, tax_cents, shipping_cents, total_cents, currency, created_at
        """

    /// The order with its lines and history; nil when missing or not owned by `owner`.
    func load(_ id: UUID, visibleTo owner: UUID? = nil) async throws -> OrderBody? {
        try await pool.withConnection { db in
            let rows = try await db.query("SELECT \(Self.orderColumns) FROM orders WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)", [id, owner])
            return try await orders(rows, db).first
        }
    }

    /// Order bodies for `rows` (in their order), with the lines and history of all of them
    /// read in one statement each.
    private func orders(_ rows: PostgresRows, _ db: PostgresConnection) async throws -> [OrderBody] {
        let ids = try rows.map { try $0.decode(UUID.self, "id") }
        guard !ids.isEmpty else { return [] }
        var items: [UUID: [ItemBody]] = [:]
        for row in try await db.query(
            "SELECT order_id, product_id, product_name, sku, quantity, unit_price_cents FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, product_id", [ids]) {
            items[try row.decode(UUID.self, "order_id"), default: []].append(
                ItemBody(productId: try row.decode(UUID.self, "product_id"), name: try row.decode(String.self, "product_name"), sku: try row.decode(String.self, "sku"),
                         quantity: try row.decode(Int.self, "quantity"), unitPriceCents: try row.decode(Int.self, "unit_price_cents")))
        }
        var history: [UUID: [HistoryBody]] = [:]
        for row in try await db.query(
            "SELECT order_id, from_status, to_status, reason, changed_at FROM order_status_history WHERE order_id = ANY($1) ORDER BY order_id, id", [ids]) {
            history[try row.decode(UUID.self, "order_id"), default: []].append(
                HistoryBody(fromStatus: try row.decode(String?.self, "from_status"), toStatus: try row.decode(String.self, "to_status"),
                            reason: try row.decode(String?.self, "reason"), changedAt: try row.decode(Date.self, "changed_at")))
        }
        return try rows.map { row in
            let id = try row.decode(UUID.self, "id")
            return OrderBody(
                id: id, orderNumber: try row.decode(String.self, "order_number"), status: try row.decode(String.self, "status"),
                cancellationReason: try row.decode(String?.self, "cancellation_reason"), paymentMethod: try row.decode(String.self, "payment_method"),
                shippingAddress: try row.decode(PostgresJSON.self, "shipping_address").decode(as: ShippingAddress.self, decoder: EmporiumJSON.decoder()),
                items: items[id] ?? [], subtotalCents: try row.decode(Int.self, "subtotal_cents"), taxCents: try row.decode(Int.self, "tax_cents"),
                shippingCents: try row.decode(Int.self, "shipping_cents"), totalCents: try row.decode(Int.self, "total_cents"), currency: try row.decode(String.self, "currency"),
                statusHistory: history[id] ?? [], createdAt: try row.decode(Date.self, "created_at"))
        }
    }
}

/// W3C trace context: accepts a valid incoming `traceparent` or starts a new trace.
enum TraceContext {
    static func parse(_ header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: "-")
        guard parts.count == 4, parts[0].count == 2, parts[1].count == 32, parts[2].count == 16, parts[3].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isHexDigit) }), parts[1] != String(repeating: "0", count: 32)
        else { return nil }
        return header.lowercased()
    }

    static func new() -> String {
        func hex(_ count: Int) -> String { (0..<count).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined() }
        return "00-\(hex(32))-\(hex(16))-01"
    }
}
