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
    let operations: OrderOperations
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
        let refund = try await operations.requestRefund(
            orderId,
            OrderOperations.RefundRequest(
                amountCents: input.amountCents, lines: input.lines?.map { ($0.productId, $0.quantity) }, reason: input.reason, restock: input.restock ?? false),
            by: identity, log: context.logger)
        return EditedResponse(
            status: .accepted,
            response: RefundBody(
                id: refund.id, orderId: orderId, amountCents: refund.amountCents, currency: refund.currency, status: RefundStatus.pending.rawValue,
                reason: refund.reason, restock: refund.restock,
                lines: refund.lines.map { RefundBody.LineBody(productId: $0.productId, quantity: $0.quantity, amountCents: $0.amountCents) }))
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
