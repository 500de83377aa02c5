import Domain
import Foundation
import Hummingbird
import Messaging
import Postgres
import Store

/// `POST /api/v1/orders/{id}/refunds` (ADMIN): a refund of an amount or of order lines, with a
/// reason and optional restocking; `GET` lists an order's refunds (its owner or an ADMIN).
/// The refund is recorded PENDING with a `refund.requested` event in one transaction; the
/// payment worker makes it at the provider under the refund's id and announces
/// `payment.refunded`, on which the order moves to PARTIALLY_REFUNDED or REFUNDED and the stock
/// worker takes restocked lines back.
struct RefundsController: Sendable {
    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    private let payments = PaymentStore()
    private let orders = OrderStore()

    struct RefundLine: Decodable {
        let productId: UUID
        let quantity: Int
    }

    struct RefundInput: Decodable {
        let amountCents: Int?
        let lines: [RefundLine]?
        let reason: String
        let restock: Bool?

        enum CodingKeys: String, CodingKey { case amountCents, lines, reason, restock }

        /// Optional fields may be left out, not sent as null (the contract does not allow null).
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            amountCents = try container.decodeUnlessAbsent(Int.self, forKey: .amountCents)
            lines = try container.decodeUnlessAbsent([RefundLine].self, forKey: .lines)
            reason = try container.decode(String.self, forKey: .reason)
            restock = try container.decodeUnlessAbsent(Bool.self, forKey: .restock)
        }
    }

    struct RefundBody: ResponseEncodable, Sendable {
        let id: UUID
        let orderId: UUID
        let amountCents: Int
        let currency: String
        let status: String
        let reason: String
        let restock: Bool
        let lines: [LineBody]
        struct LineBody: Encodable, Sendable {
            let productId: UUID
            let quantity: Int
            let amountCents: Int
        }
    }

    struct RefundList: ResponseEncodable, Sendable {
        let items: [PaymentStore.RefundEntry]
    }

    func register(on group: RouterGroup<AppRequestContext>) {
        group.post("orders/:id/refunds") { request, context in try await requestRefund(request, context) }
        group.get("orders/:id/refunds") { _, context in try await list(context) }
    }

    private func requestRefund(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<RefundBody> {
        let identity = try context.requireIdentity()
        guard identity.role.isAdmin else { throw APIError.forbidden("only admins refund orders") }
        let orderId = try context.parameters.requireUUID("id", "order")
        let (input, _) = try await request.decodeJSON(RefundInput.self, context: context)
        // The contract's rule: at most 200 characters (code points), one line, not blank.
        let scalars = input.reason.unicodeScalars
        guard scalars.count <= 200, !scalars.contains(where: { $0 == "\r" || $0 == "\n" }), scalars.contains(where: { !$0.properties.isWhitespace }) else {
            throw APIError.invalid([("reason", "must be 1 to 200 characters on one line, not blank")])
        }
        let reason = input.reason.trimmingCharacters(in: .whitespaces)
        if let lines = input.lines, lines.count > 100 { throw APIError.invalid([("lines", "at most 100 lines")]) }
        let restock = input.restock ?? false
        let (body, event) = try await pool.withTransaction { db -> (RefundBody, EventEnvelope) in
            // The order's row lock orders this request with a cancellation of the same order.
            guard let status = try await orders.status(of: orderId, lock: true, on: db) else { throw APIError.notFound("order") }
            guard status.isRefundable else { throw APIError.conflict("an order that is \(status.rawValue) cannot be refunded") }
            guard let payment = try await payments.refundable(orderId: orderId, on: db), payment.status.isCaptured else {
                throw APIError.conflict("the order's payment is not captured: ship the order to capture it, or cancel the order to release it")
            }
            let ordered = try await orders.pricedLines(of: orderId, on: db).map {
                RefundRules.OrderedLine(productId: $0.productId, quantity: $0.quantity, unitPriceCents: $0.unitPriceCents)
            }
            let planned = Result { () throws(RefundRules.Refusal) in
                try RefundRules.plan(
                    amountCents: input.amountCents, lines: input.lines?.map { ($0.productId, $0.quantity) }, restock: restock, ordered: ordered,
                    refundedQuantities: payment.refundedQuantities, capturedCents: payment.amountCents, committedCents: payment.committedCents)
            }
            let plan: RefundRules.Plan
            switch planned {
            case .success(let fits): plan = fits
            case .failure(.invalid(let field, let why)): throw APIError.invalid([(field, why)])
            case .failure(.exceeds(let why)): throw APIError.conflict(why)
            }
            let refundId = UUID()
            try await payments.request(
                PaymentStore.NewRefund(
                    id: refundId, paymentId: payment.paymentId, orderId: orderId, amountCents: plan.amountCents, currency: payment.currency,
                    reason: reason, restock: restock, requestedBy: identity.userId,
                    lines: plan.lines.map { ($0.productId, $0.quantity, $0.amountCents) }), on: db)
            let owner = try await orders.ownerAndTrace(orderId, owner: nil, on: db)
            let event = try EventEnvelope(
                type: .refundRequested, orderId: orderId, payload: RefundRequested(orderId: orderId, refundId: refundId), traceparent: owner?.traceparent)
            try await OutboxStore.append(event, exchange: names.eventsExchange, on: db)
            return (
                RefundBody(
                    id: refundId, orderId: orderId, amountCents: plan.amountCents, currency: payment.currency, status: RefundStatus.pending.rawValue,
                    reason: reason, restock: restock,
                    lines: plan.lines.map { RefundBody.LineBody(productId: $0.productId, quantity: $0.quantity, amountCents: $0.amountCents) }),
                event
            )
        }
        context.logger.info("refund requested", metadata: ["order": "\(orderId)", "refund": "\(body.id)", "amount_cents": "\(body.amountCents)"])
        outbox.publishSoon([event])
        return EditedResponse(status: .accepted, response: body)
    }

    private func list(_ context: AppRequestContext) async throws -> RefundList {
        let identity = try context.requireIdentity()
        let orderId = try context.parameters.requireUUID("id", "order")
        let owner = identity.role.isAdmin ? nil : identity.userId
        return try await pool.withConnection { db in
            guard try await orders.ownerAndTrace(orderId, owner: owner, on: db) != nil else { throw APIError.notFound("order") }
            return RefundList(items: try await payments.refunds(ofOrder: orderId, on: db))
        }
    }
}
