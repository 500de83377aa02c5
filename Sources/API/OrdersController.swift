import Crypto
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Messaging
import Metrics
import Observability
import Postgres
import Store

/// Places the cart as an order and reads the caller's orders. The checkout rules are
/// ``Checkout``'s (Domain); the rows are ``OrderStore``'s and ``CartStore``'s; the
/// `order.placed` event goes to the outbox in the same transaction.
struct OrdersController: Sendable {
    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    let pricing: Pricing
    let carts: CartStore
    /// Manual-payment orders a user may have waiting for payment at once
    /// (`MAX_UNPAID_ORDERS_PER_USER`): each holds its stock until paid or expired.
    let maxUnpaidOrders: Int
    let operations: OrderOperations
    private let orders = OrderStore()
    private let idempotency = IdempotencyStore()

    init(
        pool: PostgresPool, outbox: OutboxPublisher, names: MessagingNames, pricing: Pricing, cartExpiry: Duration, maxUnpaidOrders: Int
    ) {
        self.pool = pool
        self.outbox = outbox
        self.names = names
        self.pricing = pricing
        self.carts = CartStore(expiry: cartExpiry)
        self.maxUnpaidOrders = maxUnpaidOrders
        self.operations = OrderOperations(pool: pool, outbox: outbox, names: names)
    }

    struct PlaceOrder: Decodable {
        let paymentMethod: String
        let shippingAddress: OrderStore.Address
        /// The total the client agrees to pay at the current prices: when a price changed since
        /// a line was added, the order is placed only if this matches (else 409 with the new prices).
        let expectedTotalCents: Int?
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

    /// The owner (or an ADMIN) cancels an order before it ships (``OrderOperations/cancel``).
    private func cancel(_ context: AppRequestContext) async throws -> OrderStore.Order {
        let identity = try context.requireIdentity()
        let id = try context.parameters.requireUUID("id", "order")
        try await operations.cancel(id, by: identity, log: context.logger)
        return try await load(id, visibleTo: identity.role.isAdmin ? nil : identity.userId)
    }

    /// ADMIN moves an order to SHIPPED or DELIVERED (``OrderOperations/advance``).
    private func changeStatus(_ request: Request, _ context: AppRequestContext) async throws -> OrderStore.Order {
        let identity = try context.requireIdentity()
        guard identity.role.isAdmin else { throw APIError.forbidden("only admins change an order's status") }
        let id = try context.parameters.requireUUID("id", "order")
        let (input, _) = try await request.decodeJSON(StatusChange.self, context: context)
        try await operations.advance(id, to: input.status, by: identity, log: context.logger)
        return try await load(id, visibleTo: nil)
    }

    // MARK: Placement

    private func place(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let userId = try context.requireIdentity().userId
        guard let key = request.headers[HTTPField.Name("Idempotency-Key")!], !key.isEmpty else {
            throw APIError.badRequest("the Idempotency-Key header is required", errors: [.init(field: "Idempotency-Key", message: "required")])
        }
        let (input, raw) = try await request.decodeJSON(PlaceOrder.self, context: context)
        // The request span's context when tracing is on (its trace continues the client's);
        // otherwise the client's traceparent, or a new trace.
        let traceparent = EmporiumTracing.currentTraceparent() ?? TraceContext.parse(request.headers[HTTPField.Name("traceparent")!]) ?? TraceContext.new()
        let placed = try await place(userId: userId, key: key, input: input, body: raw, traceparent: traceparent, log: context.logger)
        return jsonResponse(status: placed.status, body: placed.body, replayed: placed.replayed)
    }

    /// What a placement answered: the stored response (201 and the order) and whether it is
    /// the replay of an earlier request with the same key.
    struct Placed: Sendable {
        let status: Int
        let body: String
        let replayed: Bool
    }

    /// Places `userId`'s cart as an order under idempotency `key` (`body` is the request as
    /// sent, hashed to tell a retry from another request under the same key): the API's route
    /// and the storefront's checkout form.
    func place(userId: UUID, key: String, input: PlaceOrder, body raw: [UInt8], traceparent: String, log logger: Logger) async throws -> Placed {
        guard FieldRules.length(key) <= 255 else { throw APIError.badRequest("the Idempotency-Key header is at most 255 characters") }
        try validate(input)
        let hash = SHA256.hash(data: raw).hexEncoded
        // One transaction decides the key, places the order with its event and stores the
        // response: a failure anywhere rolls all of it back and leaves the key free. It takes
        // two round trips: every read at once, then every write with the COMMIT.
        var attempt = 0
        var placement: Placement
        while true {
            attempt += 1
            do {
                placement = try await pool.withTransaction { db -> Placement in
                    try await placeOnce(userId: userId, key: key, hash: hash, input: input, traceparent: traceparent, db)
                }
                break
            } catch  where OrderStore.isOrderNumberTaken(error) && attempt < OrderStore.orderNumberAttempts {
                // The random order number collided (rare): the whole transaction runs again
                // with a fresh one.
                continue
            }
        }
        let (body, appended): (String, OutboxStore.OutboxEvent)
        switch placement {
        case .placed(let stored, let placed): (body, appended) = (stored, placed)
        case .replayed(let status, let body): return Placed(status: status, body: body, replayed: true)
        case .refused(let error): throw error
        }
        outbox.publishSoon([appended])
        let event = appended.event
        var log = logger
        log[metadataKey: LogKeys.orderID] = "\(event.orderId.map { "\($0)" } ?? "-")"
        log[metadataKey: LogKeys.traceID] = "\(traceID(ofTraceparent: traceparent) ?? "-")"
        log.info("order placed", metadata: [LogKeys.eventType: "\(event.type)", LogKeys.messageID: "\(event.id)"])
        Counter(label: "orders_placed_total").increment()
        return Placed(status: 201, body: body, replayed: false)
    }

    /// One attempt at the placement transaction. The first round trip sends every read: the
    /// key's look-up (which takes its lock), the transaction's time, and the cart (touched,
    /// which locks it, and its priced lines). The second sends the order, its lines, history
    /// and event, the emptied cart and the stored response, with the COMMIT.
    private func placeOnce(userId: UUID, key: String, hash: String, input: PlaceOrder, traceparent: String, _ db: PostgresConnection) async throws
        -> Placement
    {
        let cartReads = carts.checkoutStatements(ofUser: userId)
        let answers = try await db.queries(
            [idempotency.lookUpStatement(userId: userId, key: key), OrderStore.transactionTimeStatement] + cartReads)
        switch try await idempotency.decide(answers[0], userId: userId, key: key, requestHash: hash, on: db) {
        case .replay(let status, let body): return .replayed(status, body)
        case .mismatch:
            // 409: the key's stored request conflicts with this one. (The IETF draft suggests
            // 422, which would tell a client following the schema that its body is invalid.)
            throw APIError.conflict("this Idempotency-Key was already used with a different request body")
        case .inFlight: throw APIError.conflict("a request with this Idempotency-Key is still being processed; retry shortly")
        case .fresh: break
        }
        let now = try OrderStore.transactionTime(from: answers[1])
        let (cartId, lines) = try carts.checkoutLines(from: answers[2...])
        switch try await createOrder(userId: userId, cartId: cartId, lines: lines, created: now, input: input, traceparent: traceparent, db) {
        case .placed(let order, let event):
            // Through the tree encoder, which writes what `EmporiumJSON.encoder()` writes:
            // `JSONEncoder` was 9% of the API's CPU per order (profile of 2026-12-06).
            let stored = try await idempotency.recordAndCommit(
                userId: userId, key: key, requestHash: hash, status: 201, body: Data(try JSONValueEncoder().encode(order).jsonBytes), on: db)
            return .placed(stored, event)
        case .refused(let error):
            // Committed without an order (and without the key): the cart now shows the current prices.
            return .refused(error)
        }
    }

    private func validate(_ input: PlaceOrder) throws {
        var problems: [(String, String)] = []
        if !FieldRules.isToken(input.paymentMethod, extra: "_", max: 64) {
            problems.append(("payment_method", "must be a payment token such as tok_visa"))
        }
        if let expected = input.expectedTotalCents, expected < 0 {
            problems.append(("expected_total_cents", "must not be negative"))
        }
        let address = input.shippingAddress
        problems += AddressRules.problems(
            line1: address.line1, line2: address.line2, city: address.city, postalCode: address.postalCode,
            country: address.country, prefix: "shipping_address.")
        guard problems.isEmpty else { throw APIError.invalid(problems) }
    }

    /// What a placement transaction ends with: the stored response and the event, the
    /// response stored for the key before, or a refusal that still commits (the cart's lines
    /// re-priced to the current prices).
    private enum Placement {
        case placed(String, OutboxStore.OutboxEvent)
        case replayed(Int, String)
        case refused(APIError)
    }

    private enum Created {
        case placed(OrderStore.Order, OutboxStore.OutboxEvent)
        case refused(APIError)
    }

    /// Writes the order (with its lines and first history row) and its `order.placed` outbox
    /// row, and empties the cart, all in the caller's transaction, which holds the cart's lock
    /// and read its `lines` priced as they are now. Each line is checked against its product
    /// (``Checkout/decide(_:pricing:expectedTotalCents:)``). Nothing here is a round trip
    /// unless the order is refused or paid manually: the writes go out with the caller's next
    /// statement.
    private func createOrder(
        userId: UUID, cartId: UUID, lines: [Checkout.Line], created: Date, input: PlaceOrder, traceparent: String, _ db: PostgresConnection
    ) async throws -> Created {
        if input.paymentMethod == PaymentIds.manualMethod {
            // A manual order holds its stock until paid or expired: a bounded number per user.
            let unpaid = try await orders.unpaidOrders(of: userId, method: PaymentIds.manualMethod, on: db)
            guard unpaid < maxUnpaidOrders else {
                throw APIError.conflict("\(unpaid) orders are already waiting for payment; pay or cancel one before placing another")
            }
        }
        let totals: Checkout.Totals
        switch Checkout.decide(lines, pricing: pricing, expectedTotalCents: input.expectedTotalCents) {
        case .place(let decided): totals = decided
        case .empty: throw APIError.conflict("the cart is empty")
        case .tooManyLines: throw APIError.conflict("an order holds at most \(Checkout.maxLines) lines")
        case .unavailable(let notes): throw APIError(status: .conflict, detail: "the cart holds products that are no longer sold", errors: fieldErrors(notes))
        case .mixedCurrencies: throw APIError.conflict("the cart mixes currencies")
        case .tooLarge: throw APIError.conflict("the order total is too large")
        case .totalMismatch(let expected, let actual, let changes):
            return .refused(
                APIError(status: .conflict, detail: "the order total at the current prices is \(actual), not \(expected)", errors: fieldErrors(changes)))
        case .pricesChanged(let changes, let total):
            // The cart takes the current prices now, so what the client sees next is what it pays.
            try await carts.repriceToCurrent(cartId, on: db)
            return .refused(
                APIError(
                    status: .conflict,
                    detail:
                        "prices changed since the items were added; the cart now shows the current prices (total \(total)): place the order again, or send expected_total_cents",
                    errors: fieldErrors(changes)))
        }
        let items = lines.map { OrderStore.Item(productId: $0.productId, name: $0.name, sku: $0.sku, quantity: $0.quantity, unitPriceCents: $0.currentCents) }
        let order = try await orders.write(
            OrderStore.NewOrder(
                id: UUID.random(), orderNumber: Checkout.newOrderNumber(), userId: userId, paymentMethod: input.paymentMethod,
                shippingAddress: input.shippingAddress,
                items: items, subtotalCents: totals.subtotalCents, taxCents: totals.taxCents, shippingCents: totals.shippingCents,
                totalCents: totals.totalCents,
                currency: totals.currency, traceparent: traceparent), created: created, on: db)
        try await carts.clear(cartId, on: db)
        let event = try EventEnvelope(
            type: .orderPlaced, orderId: order.id,
            payload: OrderPlaced(
                orderId: order.id, userId: userId, totalCents: order.totalCents, currency: order.currency, paymentMethod: order.paymentMethod,
                lines: items.map { OrderLine(productId: $0.productId, quantity: $0.quantity) }),
            traceparent: traceparent)
        return .placed(order, try await OutboxStore.append(event, exchange: names.eventsExchange, on: db))
    }

    /// Checkout's notes on lines, as the problem body's `errors` (`items.<product id>`).
    private func fieldErrors(_ notes: [Checkout.LineNote]) -> [APIError.FieldError] {
        notes.map { .init(field: "items.\($0.productId.uuidString.lowercased())", message: $0.message) }
    }

    private func jsonResponse(status: Int, body: String, replayed: Bool) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if replayed { headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    // MARK: Reading

    /// The caller's orders, newest first; an ADMIN sees every order.
    private func list(_ request: Request, _ context: AppRequestContext) async throws -> PageBody<OrderStore.Order> {
        let identity = try context.requireIdentity()
        let page = try Page(request)
        let found = try await pool.withConnection {
            try await orders.page(of: identity.role.isAdmin ? nil : identity.userId, size: page.size, offset: page.offset, on: $0)
        }
        return PageBody(items: found.orders, page: page.number, pageSize: page.size, total: found.total)
    }

    private func get(_ context: AppRequestContext) async throws -> OrderStore.Order {
        let identity = try context.requireIdentity()
        let id = try context.parameters.requireUUID("id", "order")
        // Another user's order is indistinguishable from a missing one.
        return try await load(id, visibleTo: identity.role.isAdmin ? nil : identity.userId)
    }

    /// The order with its lines and history; 404 when missing or not `owner`'s.
    private func load(_ id: UUID, visibleTo owner: UUID?) async throws -> OrderStore.Order {
        guard let order = try await pool.withConnection({ try await orders.order(id, visibleTo: owner, on: $0) }) else { throw APIError.notFound("order") }
        return order
    }
}
