import Domain
import Foundation
import Hummingbird
import Messaging
import Postgres
import Store

/// Manual payments (`payments/intent`, `payments/confirm`) and the caller's payment history.
/// The rows are ``PaymentStore``'s, the same store the payment worker writes through.
struct PaymentsController: Sendable {
    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    private let payments = PaymentStore()
    private let orders = OrderStore()

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
        guard let order = try await pool.withConnection({ try await orders.paymentFacts(input.orderId, on: $0) }), order.userId == userId else {
            throw APIError.notFound("order")
        }
        guard order.paymentMethod == PaymentIds.manualMethod else { throw APIError.conflict("this order is paid with the card given at checkout") }
        guard order.status == .awaitingPayment else {
            throw APIError.conflict(
                order.status == .pending
                    ? "the order's stock is still being reserved; retry shortly" : "the order is \(order.status.rawValue.lowercased()), not awaiting payment")
        }
        let paymentId = PaymentIds.paymentId(for: input.orderId)
        let status = try await payments.openManual(
            PaymentStore.NewPayment(
                id: paymentId, orderId: input.orderId, userId: userId, amountCents: order.totalCents, currency: order.currency,
                method: PaymentIds.manualMethod, provider: PaymentIds.providerName), on: pool)
        return IntentBody(
            paymentId: paymentId, orderId: input.orderId, amountCents: order.totalCents, currency: order.currency,
            status: status == .pending ? "requires_confirmation" : status.rawValue.lowercased())
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
            guard let payment = try await payments.confirmable(input.paymentId, ofUser: userId, on: db) else { throw APIError.notFound("payment") }
            guard payment.status == .pending, payment.orderStatus == .awaitingPayment, payment.method == PaymentIds.manualMethod else {
                throw APIError.conflict("this payment is already being processed or finished")
            }
            // The method records the token from now on, so a second confirm is refused above.
            try await payments.setMethod(input.paymentId, to: method, on: db)
            let event = try EventEnvelope(
                type: .paymentRequested, orderId: payment.orderId,
                payload: PaymentRequested(
                    orderId: payment.orderId, userId: userId, amountCents: payment.amountCents, currency: payment.currency, paymentMethod: method),
                traceparent: payment.traceparent)
            try await OutboxStore.append(event, exchange: names.eventsExchange, on: db)
            return (
                IntentBody(
                    paymentId: input.paymentId, orderId: payment.orderId, amountCents: payment.amountCents, currency: payment.currency, status: "processing"),
                event
            )
        }
        outbox.publishSoon([event])
        return EditedResponse(status: .accepted, response: body)
    }

    /// The caller's own payments, newest first, with what was refunded.
    private func history(_ request: Request, _ context: AppRequestContext) async throws -> PageBody<PaymentStore.HistoryEntry> {
        let userId = try context.requireIdentity().userId
        let page = try Page(request)
        let found = try await payments.history(of: userId, size: page.size, offset: page.offset, on: pool)
        return PageBody(items: found.payments, page: page.number, pageSize: page.size, total: found.total)
    }
}
