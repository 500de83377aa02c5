import Domain
import Foundation
import Logging
import Messaging
import Payments
import Postgres
import Store
import TestSupport
import Testing
import Workers

/// The saga's handlers against a migrated database, without a broker: each test calls a
/// handler inside a transaction, as the worker does, and reads what it wrote and emitted.
@Suite("Handlers", .timeLimit(.minutes(2)))
struct HandlerTests {
    /// A migrated database with one customer and products, and helpers to place orders.
    struct Fixture {
        let pool: PostgresPool
        let customer: UUID
        let orders = OrderStore()
        let catalog = CatalogStore()

        static func with<T>(_ body: (Fixture) async throws -> T) async throws -> T {
            try await TestEnvironment.withMigratedDatabase { config in
                let pool = PostgresPool(configuration: config, maxConnections: 4)
                defer { Task { await pool.close() } }
                let customer = UUID()
                try await UserStore().create(
                    id: customer, email: "\(customer)@example.com", passwordHash: "x", firstName: "Ada", lastName: "Lovelace",
                    role: .customer, on: pool)
                return try await body(Fixture(pool: pool, customer: customer))
            }
        }

        /// A product with `stock` units at 10.00 EUR.
        func product(stock: Int) async throws -> UUID {
            let id = UUID()
            _ = try await pool.withTransaction { db in
                try await catalog.create(
                    id,
                    .init(
                        name: "Item \(id.uuidString.prefix(4))", description: "", sku: "SKU-\(id.uuidString.prefix(8))",
                        priceCents: 1_000, currency: "EUR", stock: stock, images: nil, isActive: true),
                    sellerId: nil, categoryIds: nil, on: db)
            }
            return id
        }

        /// A PENDING order of `lines`, paid with `method`.
        func order(_ lines: [OrderLine], method: String = "tok_visa", number: String = Checkout.newOrderNumber()) async throws -> OrderStore.Order {
            let items = lines.map { OrderStore.Item(productId: $0.productId, name: "Item", sku: "SKU", quantity: $0.quantity, unitPriceCents: 1_000) }
            let total = items.reduce(0) { $0 + $1.unitPriceCents * $1.quantity }
            return try await pool.withTransaction { db in
                try await orders.create(
                    OrderStore.NewOrder(
                        id: UUID(), orderNumber: number, userId: customer, paymentMethod: method,
                        shippingAddress: .init(line1: "1 Main St", line2: nil, city: "Berlin", postalCode: "10115", country: "DE"),
                        items: items, subtotalCents: total, taxCents: 0, shippingCents: 0, totalCents: total, currency: "EUR",
                        traceparent: TraceContextStub.value),
                    on: db)
            }
        }

        /// Moves `order` to AWAITING_PAYMENT and charges it with the default fake provider (no
        /// drill faults), as the order and payment workers would; returns what the payment emits.
        func pay(_ order: OrderStore.Order) async throws -> [EventEnvelope] {
            let ledger = PostgresPool(configuration: pool.configuration, maxConnections: 2)
            defer { Task { await ledger.close() } }
            _ = try await handle(OrderHandler(), .stockReserved, StockOutcome(orderId: order.id), orderId: order.id)
            return try await handle(
                PaymentHandler(provider: FakePaymentProvider(ledger: ledger)), .paymentRequested,
                PaymentRequested(
                    orderId: order.id, userId: customer, amountCents: order.totalCents, currency: "EUR", paymentMethod: order.paymentMethod),
                orderId: order.id)
        }

        /// Runs `handler` on one event in a transaction, as the worker does.
        func handle<H: EventHandler>(_ handler: H, _ type: EventType, _ payload: some Encodable, orderId: UUID) async throws -> [EventEnvelope] {
            let event = try EventEnvelope(type: type, orderId: orderId, payload: payload)
            let input = try #require(H.Input(type), "\(H.role) does not take \(type.rawValue)")
            return try await pool.withTransaction { db in try await handler.handle(input, event, in: db) }
        }

        func stock(_ productId: UUID) async throws -> Int {
            try await pool.query("SELECT stock FROM products WHERE id = $1", [productId])[0].decode(Int.self, "stock")
        }

        func status(_ orderId: UUID) async throws -> OrderStatus? {
            try await pool.withConnection { try await orders.status(of: orderId, on: $0) }
        }
    }

    enum TraceContextStub {
        static let value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    }

    @Test("each handler's input is its role's routing table, and the topology binds exactly it")
    func routingTable() {
        func types<H: EventHandler>(_: H.Type) -> Set<String> { Set(H.Input.allCases.map(\.type.rawValue)) }
        #expect(types(StockHandler.self) == Set(WorkerRole.stock.consumes.map(\.rawValue)))
        #expect(types(OrderHandler.self) == Set(WorkerRole.order.consumes.map(\.rawValue)))
        #expect(types(PaymentHandler.self) == Set(WorkerRole.payment.consumes.map(\.rawValue)))
        #expect(types(NotificationHandler.self) == Set(WorkerRole.notification.consumes.map(\.rawValue)))
        let names = MessagingNames(namespace: "routing")
        for role in WorkerRole.allCases {
            let bound = names.topology().bindings.filter { $0.queue == names.queue(role) }.map(\.routingKey)
            #expect(Set(bound) == Set(role.consumes.map(\.rawValue)), "\(role)")
        }
    }

    @Test("an order as the placement stores it: the tree encoder writes the bytes EmporiumJSON's encoder writes")
    func orderBodyThroughTheTreeEncoder() async throws {
        try await Fixture.with { fixture in
            let productIds = [try await fixture.product(stock: 10), try await fixture.product(stock: 10)]
            let order = try await fixture.order(productIds.map { OrderLine(productId: $0, quantity: 2) })
            let tree = try JSONValueEncoder().encode(order).jsonBytes
            #expect(tree == Array(try EmporiumJSON.encoder().encode(order)), "\(String(decoding: tree, as: UTF8.self))")
            // What a client reads back: the fields of the schema, snake_case, dates with milliseconds.
            guard case .object(let fields) = try JSONValue(parsing: tree) else { throw TestFailure("the order is not a JSON object") }
            #expect(fields["order_number"] == .string(order.orderNumber))
            #expect(fields["total_cents"] == .int(4_000))
            guard case .string(let created)? = fields["created_at"] else { throw TestFailure("no created_at") }
            #expect(EmporiumJSON.parseDate(created) != nil && created.contains("."), "\(created)")
            guard case .array(let items)? = fields["items"] else { throw TestFailure("no items") }
            #expect(items.count == 2)
        }
    }

    @Test("an order number another order already has is replaced by a fresh one, and the order is written whole")
    func orderNumberCollision() async throws {
        try await Fixture.with { fixture in
            let productId = try await fixture.product(stock: 10)
            let taken = "EMP-000000-TAKEN1"
            let first = try await fixture.order([OrderLine(productId: productId, quantity: 1)], number: taken)
            let second = try await fixture.order([OrderLine(productId: productId, quantity: 2)], number: taken)
            #expect(first.orderNumber == taken)
            #expect(second.orderNumber != taken)
            #expect(second.orderNumber.hasPrefix("EMP-"))
            let stored = try await fixture.pool.query(
                "SELECT o.order_number, (SELECT sum(quantity) FROM order_items WHERE order_id = o.id)::int8 AS quantity, "
                    + "(SELECT count(*) FROM order_status_history WHERE order_id = o.id) AS history FROM orders o WHERE o.id = $1", [second.id])[0]
            #expect(try stored.decode(String.self, "order_number") == second.orderNumber)
            #expect(try stored.decode(Int.self, "quantity") == 2)
            #expect(try stored.decode(Int.self, "history") == 1)
        }
    }

    @Test(
        "write (the placement's pipelined insert) sends nothing of its own, dates the order with the transaction, and a taken number fails the transaction as isOrderNumberTaken"
    )
    func pipelinedWriteOfAnOrder() async throws {
        try await Fixture.with { fixture in
            let productId = try await fixture.product(stock: 10)
            let taken = try await fixture.order([OrderLine(productId: productId, quantity: 1)]).orderNumber
            func newOrder(_ number: String) -> OrderStore.NewOrder {
                OrderStore.NewOrder(
                    id: UUID(), orderNumber: number, userId: fixture.customer, paymentMethod: "tok_visa",
                    shippingAddress: .init(line1: "1 Main St", line2: nil, city: "Berlin", postalCode: "10115", country: "DE"),
                    items: [OrderStore.Item(productId: productId, name: "Item", sku: "SKU", quantity: 2, unitPriceCents: 1_000)],
                    subtotalCents: 2_000, taxCents: 0, shippingCents: 0, totalCents: 2_000, currency: "EUR", traceparent: TraceContextStub.value)
            }
            let error = await #expect(throws: PostgresError.self) {
                try await fixture.pool.withTransaction { db in
                    _ = try await fixture.orders.write(newOrder(taken), created: Date(), on: db)
                }
            }
            #expect(error.map { OrderStore.isOrderNumberTaken($0) } == true)
            #expect(OrderStore.isOrderNumberTaken(PostgresError(code: .server, message: "other", sqlState: "23505")) == false)

            let fresh = newOrder(Checkout.newOrderNumber())
            let written = try await fixture.pool.withTransaction { db -> OrderStore.Order in
                let now = try OrderStore.transactionTime(from: try await db.queries([OrderStore.transactionTimeStatement])[0])
                return try await fixture.orders.write(fresh, created: now, on: db)
            }
            let stored = try await fixture.pool.query(
                "SELECT o.order_number, o.created_at, (SELECT sum(quantity) FROM order_items WHERE order_id = o.id)::int8 AS quantity, "
                    + "(SELECT changed_at FROM order_status_history WHERE order_id = o.id) AS changed FROM orders o WHERE o.id = $1", [fresh.id])[0]
            #expect(try stored.decode(String.self, "order_number") == fresh.orderNumber)
            #expect(try stored.decode(Int.self, "quantity") == 2)
            #expect(try stored.decode(Date.self, "created_at") == written.createdAt, "the answer carries the stored instant")
            #expect(try stored.decode(Date.self, "changed") == written.createdAt, "the history row is dated with the order")
        }
    }

    @Test("stock: all lines or none; a second order that does not fit is rejected and takes nothing")
    func reserveAllOrNothing() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 3), pen = try await fixture.product(stock: 1)
            let first = try await fixture.order([OrderLine(productId: mug, quantity: 2), OrderLine(productId: pen, quantity: 1)])
            let placed = { (order: OrderStore.Order) in
                OrderPlaced(
                    orderId: order.id, userId: fixture.customer, totalCents: order.totalCents, currency: "EUR", paymentMethod: "tok_visa",
                    lines: order.items.map { OrderLine(productId: $0.productId, quantity: $0.quantity) })
            }
            let reserved = try await fixture.handle(StockHandler(), .orderPlaced, placed(first), orderId: first.id)
            #expect(reserved.map(\.type) == [EventType.stockReserved.rawValue])
            #expect(try await fixture.stock(mug) == 1)
            #expect(try await fixture.stock(pen) == 0)

            let second = try await fixture.order([OrderLine(productId: mug, quantity: 1), OrderLine(productId: pen, quantity: 1)])
            let rejected = try await fixture.handle(StockHandler(), .orderPlaced, placed(second), orderId: second.id)
            #expect(rejected.map(\.type) == [EventType.stockRejected.rawValue])
            #expect(try rejected[0].payload(as: StockOutcome.self).productId == pen)
            #expect(try await fixture.stock(mug) == 1, "a rejected order took stock")

            // The same placement again (a re-drive): answered again, nothing taken twice.
            let again = try await fixture.handle(StockHandler(), .orderPlaced, placed(first), orderId: first.id)
            #expect(again.map(\.type) == [EventType.stockReserved.rawValue])
            #expect(try await fixture.stock(mug) == 1)
        }
    }

    @Test(
        "stock: a batch of placements is decided at once, in arrival order: all lines or none per order, a short product rejects only the orders that no longer fit, a placement seen twice takes stock once, a cancelled order takes nothing"
    )
    func reserveBatch() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 3), pen = try await fixture.product(stock: 1)
            let placed = { (order: OrderStore.Order) in
                OrderPlaced(
                    orderId: order.id, userId: fixture.customer, totalCents: order.totalCents, currency: "EUR", paymentMethod: "tok_visa",
                    lines: order.items.map { OrderLine(productId: $0.productId, quantity: $0.quantity) })
            }
            let first = try await fixture.order([OrderLine(productId: mug, quantity: 2)])
            let second = try await fixture.order([OrderLine(productId: mug, quantity: 1), OrderLine(productId: pen, quantity: 1)])
            let third = try await fixture.order([OrderLine(productId: pen, quantity: 1)])
            let cancelled = try await fixture.order([OrderLine(productId: mug, quantity: 1)])
            _ = try await fixture.pool.withTransaction { try await fixture.orders.transition(cancelled.id, to: .cancelled, reason: .customer, on: $0) }

            // The first placement arrives twice (a re-drive, under a new message id).
            let events = try [first, second, third, first, cancelled].map { try EventEnvelope(type: .orderPlaced, orderId: $0.id, payload: placed($0)) }
            let handler = StockHandler()
            let (decided, answers) = try await fixture.pool.withTransaction { db in
                let prepared = try await handler.prepare(events.map { (input: StockEvent.orderPlaced, event: $0) }, in: db)
                var answers: [[String]] = []
                for event in events { answers.append(try await handler.handle(.orderPlaced, event, prepared: prepared, in: db).map(\.type)) }
                return (prepared, answers)
            }
            #expect(decided.count == events.count, "the batch was not decided at once")
            #expect(
                decided[events[0].id]?.decision == .take([OrderLine(productId: mug, quantity: 2)]) && decided[events[2].id]?.decision == .short(pen)
                    && decided[events[3].id]?.decision == .reserved && decided[events[4].id]?.decision == .skip)
            let reserved = EventType.stockReserved.rawValue, rejected = EventType.stockRejected.rawValue
            #expect(answers == [[reserved], [reserved], [rejected], [reserved], []])
            #expect(try await fixture.stock(mug) == 0)
            #expect(try await fixture.stock(pen) == 0)
            let rows = try await fixture.pool.query(
                "SELECT order_id, sum(quantity)::int8 AS n FROM stock_reservations WHERE status = 'RESERVED' GROUP BY order_id", [])
            let held = Dictionary(uniqueKeysWithValues: try rows.map { (try $0.decode(UUID.self, "order_id"), try $0.decode(Int.self, "n")) })
            #expect(held == [first.id: 2, second.id: 2], "reservations: \(held)")

            // A batch that also gives stock back (a cancellation) is not decided at once: its
            // orders go one by one, in arrival order.
            let release = try EventEnvelope(
                type: .orderCancelled, orderId: first.id, payload: OrderOutcome(orderId: first.id, userId: fixture.customer, reason: "customer"))
            let mixed = try await fixture.pool.withTransaction { db in
                try await handler.prepare([(input: StockEvent.orderCancelled, event: release), (input: .orderPlaced, event: events[2])], in: db)
            }
            #expect(mixed.isEmpty)
        }
    }

    @Test(
        "stock: a placement or a refund whose line wants 0 or fewer units (forged, or from a bug) fails permanently, alone or in a batch, and moves no stock"
    )
    func forgedQuantitiesMoveNoStock() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 5)
            let order = try await fixture.order([OrderLine(productId: mug, quantity: 1)])
            let handler = StockHandler()
            for quantity in [-5, 0] {
                let placed = try EventEnvelope(
                    type: .orderPlaced, orderId: order.id,
                    payload: OrderPlaced(
                        orderId: order.id, userId: fixture.customer, totalCents: 1_000, currency: "EUR", paymentMethod: "tok_visa",
                        lines: [OrderLine(productId: mug, quantity: quantity)]))
                let refunded = try EventEnvelope(
                    type: .paymentRefunded, orderId: order.id,
                    payload: PaymentRefunded(
                        orderId: order.id, paymentId: UUID(), refundId: UUID(), amountCents: 100, currency: "EUR",
                        restock: [OrderLine(productId: mug, quantity: quantity)]))
                for (input, event) in [(StockEvent.orderPlaced, placed), (.paymentRefunded, refunded)] {
                    let alone = await #expect(throws: (any Error).self) {
                        try await fixture.pool.withTransaction { try await handler.handle(input, event, in: $0) }
                    }
                    #expect(alone.map { FailureClass.of($0) } == .permanent, "\(event.type) with quantity \(quantity) alone")
                }
                // A batch is prepared from the same payloads: it fails, and the worker redoes
                // its messages one at a time, which dead-letters this one.
                let valid = try EventEnvelope(
                    type: .orderPlaced, orderId: order.id,
                    payload: OrderPlaced(
                        orderId: order.id, userId: fixture.customer, totalCents: 1_000, currency: "EUR", paymentMethod: "tok_visa",
                        lines: [OrderLine(productId: mug, quantity: 1)]))
                await #expect(throws: (any Error).self) {
                    try await fixture.pool.withTransaction { db in
                        try await handler.prepare([(input: StockEvent.orderPlaced, event: valid), (input: .orderPlaced, event: placed)], in: db)
                    }
                }
                #expect(try await fixture.stock(mug) == 5, "quantity \(quantity) moved stock")
            }
            #expect(try await fixture.pool.query("SELECT 1 FROM stock_reservations WHERE order_id = $1", [order.id]).count == 0)
        }
    }

    @Test("stock: a cancellation gives reserved stock back once, however often it arrives")
    func releaseOnce() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 5)
            let order = try await fixture.order([OrderLine(productId: mug, quantity: 4)])
            _ = try await fixture.handle(
                StockHandler(), .orderPlaced,
                OrderPlaced(
                    orderId: order.id, userId: fixture.customer, totalCents: 4_000, currency: "EUR", paymentMethod: "tok_visa",
                    lines: [OrderLine(productId: mug, quantity: 4)]), orderId: order.id)
            #expect(try await fixture.stock(mug) == 1)
            for _ in 0..<3 {
                _ = try await fixture.handle(
                    StockHandler(), .orderCancelled, OrderOutcome(orderId: order.id, userId: fixture.customer, reason: "customer"),
                    orderId: order.id)
            }
            #expect(try await fixture.stock(mug) == 5)
        }
    }

    @Test("order: reserved → AWAITING_PAYMENT with payment.requested; paid → CONFIRMED; declined → CANCELLED (payment_failed); each only once")
    func orderStateMachine() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 5)
            let order = try await fixture.order([OrderLine(productId: mug, quantity: 1)])
            let requested = try await fixture.handle(OrderHandler(), .stockReserved, StockOutcome(orderId: order.id), orderId: order.id)
            #expect(requested.map(\.type) == [EventType.paymentRequested.rawValue])
            #expect(try requested[0].payload(as: PaymentRequested.self).amountCents == order.totalCents)
            #expect(try await fixture.status(order.id) == .awaitingPayment)
            // A duplicate answer changes nothing and asks for nothing.
            #expect(try await fixture.handle(OrderHandler(), .stockReserved, StockOutcome(orderId: order.id), orderId: order.id).isEmpty)

            let paymentId = PaymentIds.paymentId(for: order.id)
            let confirmed = try await fixture.handle(
                OrderHandler(), .paymentSucceeded, PaymentOutcome(orderId: order.id, paymentId: paymentId), orderId: order.id)
            #expect(confirmed.map(\.type) == [EventType.orderConfirmed.rawValue])
            #expect(try await fixture.status(order.id) == .confirmed)
            // A late duplicate of an earlier step changes nothing.
            #expect(try await fixture.handle(OrderHandler(), .stockReserved, StockOutcome(orderId: order.id), orderId: order.id).isEmpty)
            #expect(try await fixture.status(order.id) == .confirmed)
            let history = try #require(try await fixture.pool.withConnection { try await fixture.orders.order(order.id, visibleTo: nil, on: $0) }).statusHistory
            #expect(history.map(\.toStatus) == ["PENDING", "AWAITING_PAYMENT", "CONFIRMED"])

            let declined = try await fixture.order([OrderLine(productId: mug, quantity: 1)])
            _ = try await fixture.handle(OrderHandler(), .stockReserved, StockOutcome(orderId: declined.id), orderId: declined.id)
            let failure = PaymentOutcome(orderId: declined.id, paymentId: PaymentIds.paymentId(for: declined.id), reason: "card_declined")
            let cancelled = try await fixture.handle(OrderHandler(), .paymentFailed, failure, orderId: declined.id)
            #expect(cancelled.map(\.type) == [EventType.orderCancelled.rawValue])
            #expect(try cancelled[0].payload(as: OrderOutcome.self).reason == CancellationReason.paymentFailed.rawValue)
            #expect(try await fixture.handle(OrderHandler(), .paymentFailed, failure, orderId: declined.id).isEmpty)
            #expect(try await fixture.status(declined.id) == .cancelled)
        }
    }

    @Test(
        "order: a batch's orders move in one statement and answer as each would alone: payment requested, confirmed, cancelled with its reason, a late charge refunded, a refund recorded, a stale or unknown step ignored, an order named twice taken one by one"
    )
    func orderBatchMovesAsAlone() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 100)
            let handler = OrderHandler()
            /// Orders in the states the messages find, and one message for each (two for one
            /// order), in arrival order.
            func scenario() async throws -> [(input: OrderEvent, event: EventEnvelope)] {
                func order(_ path: [(OrderStatus, CancellationReason?)]) async throws -> UUID {
                    let id = try await fixture.order([OrderLine(productId: mug, quantity: 2)]).id
                    for (target, reason) in path {
                        _ = try await fixture.pool.withTransaction { try await fixture.orders.transition(id, to: target, reason: reason, on: $0) }
                    }
                    return id
                }
                let reserved = try await order([]), rejected = try await order([]), twice = try await order([])
                let paid = try await order([(.awaitingPayment, nil)]), declined = try await order([(.awaitingPayment, nil)])
                let late = try await order([(.cancelled, .customer)])
                let refunded = try await order([(.awaitingPayment, nil), (.confirmed, nil)])
                let stale = try await order([(.awaitingPayment, nil), (.confirmed, nil)])
                let unknown = UUID()
                let payment = { (id: UUID) in PaymentOutcome(orderId: id, paymentId: PaymentIds.paymentId(for: id)) }
                return [
                    (.stockReserved, try EventEnvelope(type: .stockReserved, orderId: reserved, payload: StockOutcome(orderId: reserved))),
                    (.stockRejected, try EventEnvelope(type: .stockRejected, orderId: rejected, payload: StockOutcome(orderId: rejected, productId: mug))),
                    (.stockReserved, try EventEnvelope(type: .stockReserved, orderId: twice, payload: StockOutcome(orderId: twice))),
                    (.paymentSucceeded, try EventEnvelope(type: .paymentSucceeded, orderId: paid, payload: payment(paid))),
                    (.paymentFailed, try EventEnvelope(type: .paymentFailed, orderId: declined, payload: payment(declined))),
                    (.paymentSucceeded, try EventEnvelope(type: .paymentSucceeded, orderId: late, payload: payment(late))),
                    (
                        .paymentRefunded,
                        try EventEnvelope(
                            type: .paymentRefunded, orderId: refunded,
                            payload: PaymentRefunded(
                                orderId: refunded, paymentId: UUID(), refundId: UUID(), amountCents: 500, currency: "EUR", refundedCents: 500,
                                capturedCents: 2_000))
                    ),
                    (.stockReserved, try EventEnvelope(type: .stockReserved, orderId: stale, payload: StockOutcome(orderId: stale))),
                    (.stockReserved, try EventEnvelope(type: .stockReserved, orderId: twice, payload: StockOutcome(orderId: twice))),
                    (.stockReserved, try EventEnvelope(type: .stockReserved, orderId: unknown, payload: StockOutcome(orderId: unknown))),
                ]
            }
            /// An answer's type, its reason or amount, and whether it names the order's owner.
            func describe(_ answer: EventEnvelope) throws -> String {
                if answer.eventType == .paymentRequested {
                    let request = try answer.payload(as: PaymentRequested.self)
                    return "\(answer.type)(\(request.amountCents), owner: \(request.userId == fixture.customer))"
                }
                let outcome = try answer.payload(as: OrderOutcome.self)
                return "\(answer.type)(\(outcome.reason ?? "-"), owner: \(outcome.userId == fixture.customer))"
            }
            /// What the messages left: each answer's type and reason, each order's status, and
            /// the history rows the messages wrote (from, to, reason).
            func outcome(_ messages: [(input: OrderEvent, event: EventEnvelope)], _ answers: [[EventEnvelope]]) async throws -> [String] {
                var seen: [String] = []
                for ((_, event), answer) in zip(messages, answers) {
                    let orderId = try #require(event.orderId)
                    let reasons = try answer.map(describe)
                    let history = try await fixture.pool.query(
                        "SELECT coalesce(from_status, '-') || '>' || to_status || ':' || coalesce(reason, '-') AS h FROM order_status_history WHERE order_id = $1 ORDER BY id",
                        [orderId]
                    ).map { try $0.decode(String.self, "h") }
                    seen.append("\(reasons) status=\(String(describing: try await fixture.status(orderId))) history=\(history)")
                }
                return seen
            }

            let alone = try await scenario()
            var aloneAnswers: [[EventEnvelope]] = []
            for (input, event) in alone { aloneAnswers.append(try await fixture.pool.withTransaction { try await handler.handle(input, event, in: $0) }) }

            let batch = try await scenario()
            let (prepared, batchAnswers) = try await fixture.pool.withTransaction { db in
                let prepared = try await handler.prepare(batch, in: db)
                var answers: [[EventEnvelope]] = []
                for (input, event) in batch { answers.append(try await handler.handle(input, event, prepared: prepared, in: db)) }
                return (prepared, answers)
            }
            // Every message but the two that name one order was decided by the statement.
            #expect(prepared.count == batch.count - 2)
            #expect(prepared[batch[2].event.id] == nil && prepared[batch[8].event.id] == nil)
            let expected = try await outcome(alone, aloneAnswers)
            #expect(try await outcome(batch, batchAnswers) == expected)
            // And what alone does is what the saga wants (so the comparison is not of two wrongs).
            let types = aloneAnswers.map { $0.map(\.type) }
            #expect(
                types == [
                    [EventType.paymentRequested.rawValue], [EventType.orderCancelled.rawValue], [EventType.paymentRequested.rawValue],
                    [EventType.orderConfirmed.rawValue], [EventType.orderCancelled.rawValue], [EventType.paymentRefundRequested.rawValue], [], [], [], [],
                ])
            #expect(try aloneAnswers[0][0].payload(as: PaymentRequested.self).amountCents == 2_000)
            #expect(try aloneAnswers[1][0].payload(as: OrderOutcome.self).reason == CancellationReason.outOfStock.rawValue)
            #expect(try aloneAnswers[4][0].payload(as: OrderOutcome.self).reason == CancellationReason.paymentFailed.rawValue)
            #expect(try await fixture.status(try #require(batch[6].event.orderId)) == .partiallyRefunded)
            #expect(try await fixture.status(try #require(batch[7].event.orderId)) == .confirmed)

            // A batch that holds a payload no one can read fails whole in prepare and moves
            // nothing; the worker then redoes it one message at a time, which dead-letters
            // only that message (BatchTests).
            let pending = try await fixture.order([OrderLine(productId: mug, quantity: 1)]).id
            let poison = try EventEnvelope(typeName: EventType.stockReserved.rawValue, orderId: UUID(), payload: ["order_id": "not an id"])
            let healthy = try EventEnvelope(type: .stockReserved, orderId: pending, payload: StockOutcome(orderId: pending))
            await #expect(throws: (any Error).self) {
                try await fixture.pool.withTransaction { db in
                    try await handler.prepare([(input: OrderEvent.stockReserved, event: healthy), (input: .stockReserved, event: poison)], in: db)
                }
            }
            #expect(try await fixture.status(pending) == .pending)
        }
    }

    @Test("payment: a card is charged once however often it is requested; a cancellation after the charge refunds it once")
    func chargeAndRefundOnce() async throws {
        try await Fixture.with { fixture in
            let ledger = PostgresPool(configuration: fixture.pool.configuration, maxConnections: 2)
            defer { Task { await ledger.close() } }
            let handler = PaymentHandler(provider: FakePaymentProvider(ledger: ledger))
            let mug = try await fixture.product(stock: 5)
            let order = try await fixture.order([OrderLine(productId: mug, quantity: 2)])
            _ = try await fixture.handle(OrderHandler(), .stockReserved, StockOutcome(orderId: order.id), orderId: order.id)
            let request = PaymentRequested(
                orderId: order.id, userId: fixture.customer, amountCents: order.totalCents, currency: "EUR", paymentMethod: "tok_visa")
            for _ in 0..<3 {
                let outcome = try await fixture.handle(handler, .paymentRequested, request, orderId: order.id)
                #expect(outcome.map(\.type) == [EventType.paymentSucceeded.rawValue])
            }
            let charges = try await fixture.pool.query("SELECT count(*) AS n FROM fake_provider_operations WHERE order_id = $1 AND kind = 'charge'", [order.id])
            #expect(try charges[0].decode(Int.self, "n") == 1)

            _ = try await fixture.pool.withTransaction { try await fixture.orders.transition(order.id, to: .cancelled, reason: .customer, on: $0) }
            let cancelled = OrderOutcome(orderId: order.id, userId: fixture.customer, reason: "customer")
            let refunded = try await fixture.handle(handler, .orderCancelled, cancelled, orderId: order.id)
            #expect(refunded.map(\.type) == [EventType.paymentRefunded.rawValue])
            #expect(try await fixture.handle(handler, .orderCancelled, cancelled, orderId: order.id).isEmpty)
            let refunds = try await fixture.pool.query("SELECT count(*) AS n, sum(amount_cents)::int8 AS cents FROM refunds")
            #expect(try refunds[0].decode(Int.self, "n") == 1)
            #expect(try refunds[0].decode(Int.self, "cents") == order.totalCents)
        }
    }

    @Test("payment: two deliveries claiming one order's payment at once (a re-drive racing a delivery) both get the one row, neither fails")
    func concurrentPaymentClaims() async throws {
        try await Fixture.with { fixture in
            let product = try await fixture.product(stock: 1_000_000)
            let payments = PaymentStore()
            for _ in 0..<150 {
                let order = try await fixture.order([OrderLine(productId: product, quantity: 1)])
                let new = PaymentStore.NewPayment(
                    id: PaymentIds.paymentId(for: order.id), orderId: order.id, userId: fixture.customer, amountCents: order.totalCents,
                    currency: "EUR", method: "tok_visa", provider: "fake")
                // Each claim runs in its own transaction, as two workers' would. Before the
                // fix, the later insert could meet the earlier one on the one-payment-per-order
                // index, which its ON CONFLICT did not name, and fail with 23505.
                let claimed = try await withThrowingTaskGroup(of: UUID.self) { group in
                    for _ in 0..<2 {
                        group.addTask { try await fixture.pool.withTransaction { db in try await payments.claim(new, on: db).id } }
                    }
                    return try await group.reduce(into: [UUID]()) { $0.append($1) }
                }
                #expect(claimed == [new.id, new.id])
            }
            #expect(try await fixture.pool.query("SELECT count(*) AS n FROM payments")[0].decode(Int.self, "n") == 150)
        }
    }

    @Test("payment: a declined card fails the payment and says so")
    func declined() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 5)
            let outcome = try await fixture.pay(try await fixture.order([OrderLine(productId: mug, quantity: 1)], method: "tok_chargeDeclined"))
            #expect(outcome.map(\.type) == [EventType.paymentFailed.rawValue])
            #expect(try outcome[0].payload(as: PaymentOutcome.self).reason == "card_declined")
        }
    }

    /// The fake provider's crash cards are a drill (`FAKE_PROVIDER_FAULTS=true`); with the
    /// default settings a customer who sends them gets a declined payment, not a dead worker.
    /// A crash here would take the test process down with it, so the test fails loudly.
    @Test("payment: without FAKE_PROVIDER_FAULTS the drill cards tok_crash and tok_crash_after_charge are declined, nothing crashes")
    func drillCardsDeclinedByDefault() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 5)
            for card in ["tok_crash", "tok_crash_after_charge"] {
                let outcome = try await fixture.pay(try await fixture.order([OrderLine(productId: mug, quantity: 1)], method: card))
                #expect(outcome.map(\.type) == [EventType.paymentFailed.rawValue], "\(card)")
                #expect(try outcome[0].payload(as: PaymentOutcome.self).reason == "invalid_payment_method", "\(card)")
            }
        }
    }

    @Test("notification: one message per event and channel, rendered from the order")
    func notifyOnce() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 5)
            let order = try await fixture.order([OrderLine(productId: mug, quantity: 1)])
            let handler = NotificationHandler(channel: RecordingEmailChannel(), templates: try NotificationTemplates())
            let event = try EventEnvelope(type: .orderConfirmed, orderId: order.id, payload: OrderOutcome(orderId: order.id, userId: fixture.customer))
            for _ in 0..<2 {
                _ = try await fixture.pool.withTransaction { try await handler.handle(.orderConfirmed, event, in: $0) }
            }
            let sent = try await fixture.pool.query("SELECT template, body FROM notifications WHERE order_id = $1", [order.id])
            #expect(sent.count == 1)
            #expect(try sent[0].decode(String.self, "body").contains(order.orderNumber))
        }
    }

    @Test(
        "notification: a batch reads its orders' facts in one statement and records for each message what it alone would, once however often the batch comes"
    )
    func notificationBatchAsAlone() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 10)
            let handler = NotificationHandler(channel: RecordingEmailChannel(), templates: try NotificationTemplates())
            /// Two orders and what the notification worker hears of them, in arrival order: a
            /// placement (merchants only), a confirmation, a cancellation, a refund.
            func scenario() async throws -> (messages: [(input: NotificationEvent, event: EventEnvelope)], numbers: [String]) {
                let kept = try await fixture.order([OrderLine(productId: mug, quantity: 2)])
                let dropped = try await fixture.order([OrderLine(productId: mug, quantity: 1)])
                let outcome = { (order: OrderStore.Order, reason: String?) in OrderOutcome(orderId: order.id, userId: fixture.customer, reason: reason) }
                let placed = OrderPlaced(
                    orderId: kept.id, userId: fixture.customer, totalCents: kept.totalCents, currency: "EUR", paymentMethod: "tok_visa",
                    lines: [OrderLine(productId: mug, quantity: 2)])
                let refund = PaymentRefunded(
                    orderId: kept.id, paymentId: UUID(), refundId: UUID(), amountCents: 500, currency: "EUR", refundedCents: 500, capturedCents: 2_000)
                return (
                    [
                        (.orderPlaced, try EventEnvelope(type: .orderPlaced, orderId: kept.id, payload: placed)),
                        (.orderConfirmed, try EventEnvelope(type: .orderConfirmed, orderId: kept.id, payload: outcome(kept, nil))),
                        (.orderCancelled, try EventEnvelope(type: .orderCancelled, orderId: dropped.id, payload: outcome(dropped, "payment_failed"))),
                        (.paymentRefunded, try EventEnvelope(type: .paymentRefunded, orderId: kept.id, payload: refund)),
                    ], [kept.orderNumber, dropped.orderNumber]
                )
            }
            /// Each message's recorded notifications: template, recipient and body, the order
            /// numbers written as `#`.
            func recorded(_ scenario: (messages: [(input: NotificationEvent, event: EventEnvelope)], numbers: [String])) async throws -> [[String]] {
                var all: [[String]] = []
                for (_, event) in scenario.messages {
                    let rows = try await fixture.pool.query("SELECT template, recipient, body FROM notifications WHERE event_id = $1", [event.id])
                    all.append(
                        try rows.map { row in
                            var body = try row.decode(String.self, "body")
                            for number in scenario.numbers { body = body.replacingOccurrences(of: number, with: "#") }
                            return "\(try row.decode(String.self, "template")) to \(try row.decode(String.self, "recipient")): \(body)"
                        })
                }
                return all
            }

            let alone = try await scenario()
            for (input, event) in alone.messages { _ = try await fixture.pool.withTransaction { try await handler.handle(input, event, in: $0) } }
            let expected = try await recorded(alone)
            #expect(expected.map(\.count) == [0, 1, 1, 1], "what one message at a time records: \(expected)")
            #expect(expected[1].first?.contains("@example.com") == true && expected[3].first?.contains("5.00") == true, "\(expected)")

            let batch = try await scenario()
            for _ in 0..<2 {
                let facts = try await fixture.pool.withTransaction { db in
                    let prepared = try await handler.prepare(batch.messages, in: db)
                    for (input, event) in batch.messages { _ = try await handler.handle(input, event, prepared: prepared, in: db) }
                    return prepared
                }
                #expect(Set(facts.facts.keys) == Set(batch.messages.compactMap(\.event.orderId)), "the batch did not read its orders' facts at once")
            }
            #expect(try await recorded(batch) == expected)
        }
    }

    @Test(
        "notification: a batch queues a merchant event's webhook deliveries exactly as one message at a time does, and none for an event no enabled endpoint receives"
    )
    func notificationBatchWebhooksAsAlone() async throws {
        try await Fixture.with { fixture in
            let mug = try await fixture.product(stock: 10)
            let handler = NotificationHandler(channel: RecordingEmailChannel(), templates: try NotificationTemplates())
            let webhooks = WebhookStore()
            // A family, an exact type, and a disabled endpoint that would receive everything.
            let families = try await webhooks.create(
                id: UUID(), url: "https://merchant.example/a", eventTypes: ["order.*"], enabled: true, secret: "whsec_a", createdBy: fixture.customer,
                on: fixture.pool)
            let exact = try await webhooks.create(
                id: UUID(), url: "https://merchant.example/b", eventTypes: ["payment.succeeded"], enabled: true, secret: "whsec_b",
                createdBy: fixture.customer, on: fixture.pool)
            _ = try await webhooks.create(
                id: UUID(), url: "https://merchant.example/c", eventTypes: ["*"], enabled: false, secret: "whsec_c", createdBy: fixture.customer,
                on: fixture.pool)
            /// One order's merchant events: two that endpoints receive, two that none does.
            func scenario() async throws -> [(input: NotificationEvent, event: EventEnvelope)] {
                let order = try await fixture.order([OrderLine(productId: mug, quantity: 1)])
                let placed = OrderPlaced(
                    orderId: order.id, userId: fixture.customer, totalCents: order.totalCents, currency: "EUR", paymentMethod: "tok_visa",
                    lines: [OrderLine(productId: mug, quantity: 1)])
                let payment = PaymentOutcome(orderId: order.id, paymentId: UUID(), reason: nil)
                let refund = RefundRequested(orderId: order.id, refundId: UUID())
                return [
                    (.orderPlaced, try EventEnvelope(type: .orderPlaced, orderId: order.id, payload: placed)),
                    (.paymentSucceeded, try EventEnvelope(type: .paymentSucceeded, orderId: order.id, payload: payment)),
                    (.paymentFailed, try EventEnvelope(type: .paymentFailed, orderId: order.id, payload: payment)),
                    (.refundRequested, try EventEnvelope(type: .refundRequested, orderId: order.id, payload: refund)),
                ]
            }
            /// Each message's queued deliveries, as the endpoint's URL.
            func queued(_ messages: [(input: NotificationEvent, event: EventEnvelope)]) async throws -> [[String]] {
                var all: [[String]] = []
                for (_, event) in messages {
                    all.append(
                        try await fixture.pool.query(
                            "SELECT e.url FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.event_id = $1 ORDER BY e.url",
                            [event.id]
                        ).map { try $0.decode(String.self, "url") })
                }
                return all
            }

            let alone = try await scenario()
            for (input, event) in alone { _ = try await fixture.pool.withTransaction { try await handler.handle(input, event, in: $0) } }
            let expected = try await queued(alone)
            #expect(expected == [[families.url], [exact.url], [], []], "what one message at a time queues: \(expected)")

            let batch = try await scenario()
            let prepared = try await fixture.pool.withTransaction { db in
                let prepared = try await handler.prepare(batch, in: db)
                for (input, event) in batch { _ = try await handler.handle(input, event, prepared: prepared, in: db) }
                return prepared
            }
            #expect(prepared.subscribed == ["order.*", "payment.succeeded"], "the batch read the enabled endpoints' patterns once")
            #expect(try await queued(batch) == expected)
        }
    }
}
