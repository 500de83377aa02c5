import Domain
import Foundation
import Hummingbird
import Messaging
import Postgres

/// `GET /api/v1/payments/history`: the caller's own payments, newest first, with refunds.
struct PaymentsController: Sendable {
    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames

    struct IntentRequest: Decodable {
        let orderId: UUID
    }

    struct ConfirmRequest: Decodable {
        let paymentId: UUID
        let paymentMethod: String
    }

    struct IntentBody: ResponseEncodable, Sendable {
        let paymentId: UUID
        let orderId: UUID
        let amountCents: Int
        let currency: String
        let status: String
    }

    struct PaymentBody: Encodable, Sendable {
        let id: UUID
        let orderId: UUID
        let amountCents: Int
        let currency: String
        let method: String
        let status: String
        let failureReason: String?
        let refundedCents: Int?
        let createdAt: Date
    }

    func register(on group: RouterGroup<AppRequestContext>) {
        group.get("payments/history") { request, context in try await history(request, context) }
        group.post("payments/intent") { request, context in try await intent(request, context) }
        group.post("payments/confirm") { request, context in try await confirm(request, context) }
    }

    /// The payment of an order placed with `payment_method: "manual"`: what to pay. The
    /// payment id is the one the payment worker uses, so the two paths meet on one row.
    private func intent(_ request: Request, _ context: AppRequestContext) async throws -> IntentBody {
        let userId = try context.requireIdentity().userId
        let (input, _) = try await request.decodeJSON(IntentRequest.self, context: context)
        guard let order = try await pool.query(
            "SELECT status, payment_method, total_cents, currency FROM orders WHERE id = $1 AND user_id = $2", [input.orderId, userId]).first
        else { throw APIError.notFound("order") }
        guard try order.decode(String.self, "payment_method") == PaymentIds.manualMethod else {
            throw APIError.conflict("this order is paid with the card given at checkout")
        }
        let status = try order.decode(String.self, "status")
        guard status == "AWAITING_PAYMENT" else {
            throw APIError.conflict(status == "PENDING" ? "the order's stock is still being reserved; retry shortly" : "the order is \(status.lowercased()), not awaiting payment")
        }
        let paymentId = PaymentIds.paymentId(for: input.orderId)
        let amount = try order.decode(Int.self, "total_cents"), currency = try order.decode(String.self, "currency")
        try await pool.query(
            """
            INSERT INTO payments (id, order_id, user_id, amount_cents, currency, method, status, provider)
            VALUES ($1, $2, $3, $4, $5, 'manual', 'PENDING', 'fake') ON CONFLICT (id) DO NOTHING
            """, [paymentId, input.orderId, userId, amount, currency])
        let payment = try await pool.query("SELECT status FROM payments WHERE id = $1", [paymentId])[0]
        let paymentStatus = try payment.decode(String.self, "status")
        return IntentBody(paymentId: paymentId, orderId: input.orderId, amountCents: amount, currency: currency,
                          status: paymentStatus == "PENDING" ? "requires_confirmation" : paymentStatus.lowercased())
    }

    /// Confirms a manual payment with a card token: the charge request goes through the
    /// outbox to the payment worker (idempotent by payment id), so confirming twice never
    /// charges twice. Answers 202; the order shows the outcome.
    private func confirm(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<IntentBody> {
        let userId = try context.requireIdentity().userId
        let (input, _) = try await request.decodeJSON(ConfirmRequest.self, context: context)
        let method = input.paymentMethod
        guard FieldRules.isToken(method, extra: "_", max: 64), method != PaymentIds.manualMethod else {
            throw APIError.invalid([("payment_method", "must be a card token such as tok_visa")])
        }
        let (body, event) = try await pool.withTransaction { db -> (IntentBody, EventEnvelope) in
            guard let row = try await db.query(
                """
                SELECT p.order_id, p.amount_cents, p.currency, p.status, p.method, o.status AS order_status, o.trace_parent
                FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = $1 AND p.user_id = $2 FOR UPDATE OF p
                """, [input.paymentId, userId]).first
            else { throw APIError.notFound("payment") }
            guard try row.decode(String.self, "status") == "PENDING", try row.decode(String.self, "order_status") == "AWAITING_PAYMENT",
                  try row.decode(String.self, "method") == PaymentIds.manualMethod
            else { throw APIError.conflict("this payment is already being processed or finished") }
            let orderId = try row.decode(UUID.self, "order_id")
            let amount = try row.decode(Int.self, "amount_cents"), currency = try row.decode(String.self, "currency")
            // The method records the token from now on, so a second confirm is refused above.
            try await db.query("UPDATE payments SET method = $2, updated_at = now() WHERE id = $1", [input.paymentId, method])
            let event = try EventEnvelope(type: EventType.paymentRequested, orderId: orderId,
                                          payload: PaymentRequested(orderId: orderId, userId: userId, amountCents: amount, currency: currency, paymentMethod: method),
                                          traceparent: try row.decode(String?.self, "trace_parent"))
            try await Outbox.append(event, exchange: names.eventsExchange, on: db)
            return (IntentBody(paymentId: input.paymentId, orderId: orderId, amountCents: amount, currency: currency, status: "processing"), event)
        }
        outbox.publishSoon([event])
        return EditedResponse(status: .accepted, response: body)
    }

    private func history(_ request: Request, _ context: AppRequestContext) async throws -> PageBody<PaymentBody> {
        let userId = try context.requireIdentity().userId
        let page = try Page(request)
        let rows = try await pool.query(
            """
            SELECT p.id, p.order_id, p.amount_cents, p.currency, p.method, p.status, p.failure_reason, r.amount_cents AS refunded_cents,
                   p.created_at, count(*) OVER () AS total
            FROM payments p LEFT JOIN refunds r ON r.payment_id = p.id
            WHERE p.user_id = $1 ORDER BY p.created_at DESC, p.id LIMIT $2 OFFSET $3
            """, [userId, page.size, page.offset])
        let items = try rows.map {
            PaymentBody(id: try $0.decode(UUID.self, "id"), orderId: try $0.decode(UUID.self, "order_id"), amountCents: try $0.decode(Int.self, "amount_cents"),
                        currency: try $0.decode(String.self, "currency"), method: try $0.decode(String.self, "method"), status: try $0.decode(String.self, "status"),
                        failureReason: try $0.decode(String?.self, "failure_reason"), refundedCents: try $0.decode(Int?.self, "refunded_cents"),
                        createdAt: try $0.decode(Date.self, "created_at"))
        }
        return PageBody(items: items, page: page.number, pageSize: page.size, total: try rows.first?.decode(Int.self, "total") ?? 0)
    }
}
