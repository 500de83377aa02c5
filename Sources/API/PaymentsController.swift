import Foundation
import Hummingbird
import Postgres

/// `GET /api/v1/payments/history`: the caller's own payments, newest first, with refunds.
struct PaymentsController: Sendable {
    let pool: PostgresPool

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
