import Domain
import Foundation
import Hummingbird
import Messaging
import Payments
import Postgres
import Store

/// Client-confirmed payments (`payments/intent`, and with the fake provider
/// `payments/confirm`) and the caller's payment history. The rows are ``PaymentStore``'s, the
/// same store the payment worker writes through.
///
/// With Stripe, the intent is a PaymentIntent whose `client_secret` the customer's browser
/// confirms with Stripe.js (3-D Secure included); the order advances when Stripe's webhook says
/// the payment succeeded, never on the client's word.
struct PaymentsController: Sendable {
    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    let provider: any PaymentProvider
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
        var status: String
        /// Which provider the payment goes through: `fake` or `stripe`.
        var provider: String? = nil
        /// Stripe's PaymentIntent client secret, for Stripe.js in the customer's browser.
        var clientSecret: String? = nil
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
        return try await openIntent(input.orderId, userId: userId).body
    }

    /// Opens (or finds again) the payment of `userId`'s manual order `orderId`: the intent's
    /// body and, with a provider that has client intents, the provider's reference. The
    /// storefront's pay page calls this too.
    func openIntent(_ orderId: UUID, userId: UUID) async throws -> (body: IntentBody, reference: String?) {
        guard let order = try await pool.withConnection({ try await orders.paymentFacts(orderId, on: $0) }), order.userId == userId else {
            throw APIError.notFound("order")
        }
        guard order.paymentMethod == PaymentIds.manualMethod else { throw APIError.conflict("this order is paid with the card given at checkout") }
        guard order.status == .awaitingPayment else {
            throw APIError.conflict(
                order.status == .pending
                    ? "the order's stock is still being reserved; retry shortly" : "the order is \(order.status.rawValue.lowercased()), not awaiting payment")
        }
        let paymentId = PaymentIds.paymentId(for: orderId)
        let status = try await payments.openManual(
            PaymentStore.NewPayment(
                id: paymentId, orderId: orderId, userId: userId, amountCents: order.totalCents, currency: order.currency,
                method: PaymentIds.manualMethod, provider: provider.name), on: pool)
        var body = IntentBody(
            paymentId: paymentId, orderId: orderId, amountCents: order.totalCents, currency: order.currency,
            status: status == .pending ? "requires_confirmation" : status.rawValue.lowercased(), provider: provider.name)
        guard provider.name != PaymentIds.fakeProviderName, status == .pending else { return (body, nil) }
        let intent: ClientIntent
        do {
            intent = try await provider.openClientIntent(
                ChargeRequest(
                    idempotencyKey: paymentId.uuidString.lowercased(), orderId: orderId, amountCents: order.totalCents, currency: order.currency,
                    paymentMethod: PaymentIds.manualMethod))
        } catch is TransientFailure {
            throw APIError.unavailable("the payment provider is unavailable; retry shortly")
        }
        try await payments.setReference(paymentId, to: intent.reference, on: pool)
        body.status = "requires_payment_method"
        body.clientSecret = intent.clientSecret
        return (body, intent.reference)
    }

    /// A secret for the provider's card form in the customer's browser (Stripe.js), so the
    /// card number goes to the provider and never through Emporium.
    func openCardCollection(for orderId: UUID) async throws -> String {
        do {
            return try await provider.openCardCollection(
                idempotencyKey: "\(PaymentIds.paymentId(for: orderId).uuidString.lowercased()):\(UUID().uuidString.lowercased())")
        } catch is TransientFailure {
            throw APIError.unavailable("the payment provider is unavailable; retry shortly")
        }
    }

    /// Confirms `userId`'s manual order with the payment method their browser collected
    /// (`pm_…`), server-side, so an order that no longer awaits payment (cancelled, expired)
    /// is never charged. Answers what the browser does next; the order moves on the
    /// provider's webhook, not on this answer.
    func confirmCollected(_ orderId: UUID, userId: UUID, paymentMethod: String) async throws -> ClientConfirmation {
        guard paymentMethod.hasPrefix("pm_"), FieldRules.isToken(paymentMethod, extra: "_", max: 64) else {
            throw APIError.invalid([("payment_method", "must be the pm_… id Stripe.js returned")])
        }
        let (body, reference) = try await openIntent(orderId, userId: userId)
        guard let reference else { throw APIError.conflict("this payment is already being processed or finished") }
        do {
            return try await provider.confirmClientIntent(
                reference: reference, paymentMethod: paymentMethod, idempotencyKey: "client:\(body.paymentId.uuidString.lowercased()):\(paymentMethod)")
        } catch is TransientFailure {
            throw APIError.unavailable("the payment provider is unavailable; retry shortly")
        } catch is ClientConfirmationUnsupported {
            throw APIError.conflict("with \(provider.name), confirm the payment with POST /api/v1/payments/confirm")
        }
    }

    /// Confirms a manual payment with a card token: the charge request goes through the
    /// outbox to the payment worker (idempotent by payment id), so confirming twice never
    /// charges twice. Answers 202; the order shows the outcome.
    private func confirm(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<IntentBody> {
        let userId = try context.requireIdentity().userId
        let (input, _) = try await request.decodeJSON(ConfirmRequest.self, context: context)
        guard provider.name == PaymentIds.fakeProviderName else {
            throw APIError.conflict("with \(provider.name), confirm the payment in the browser with the intent's client_secret")
        }
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
