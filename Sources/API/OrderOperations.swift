import Domain
import Foundation
import Logging
import Messaging
import Observability
import Postgres
import Store

/// What happens to an order after placement, whoever asks: the API's routes and the operator
/// console's forms both call these, so a shipment, a cancellation or a refund follows one set
/// of rules. Each change, its event (through the outbox) and its audit-log entry are written
/// in one transaction.
struct OrderOperations: Sendable {
    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    private let orders = OrderStore()
    private let payments = PaymentStore()
    private let audit = AuditStore()

    init(pool: PostgresPool, outbox: OutboxPublisher, names: MessagingNames) {
        self.pool = pool
        self.outbox = outbox
        self.names = names
    }

    /// The owner (or an ADMIN) cancels an order before it ships. The saga does the rest: the
    /// stock worker releases the reservation and the payment worker refunds or releases a charge.
    func cancel(_ id: UUID, by identity: Identity, log: Logger) async throws {
        try await move(
            id, to: .cancelled, reason: .customer, owner: identity.role.isAdmin ? nil : identity.userId, actor: identity.userId,
            eventType: .orderCancelled, refused: "the order can no longer be cancelled (it has shipped or is already cancelled)", log: log)
    }

    /// An ADMIN moves an order to SHIPPED or DELIVERED (`status`), only along allowed transitions.
    func advance(_ id: UUID, to status: String, by identity: Identity, log: Logger) async throws {
        guard identity.role.isAdmin else { throw APIError.forbidden("only admins change an order's status") }
        let target: OrderStatus, eventType: EventType
        switch OrderStatus(rawValue: status) {
        case .shipped: (target, eventType) = (.shipped, .orderShipped)
        case .delivered: (target, eventType) = (.delivered, .orderDelivered)
        default: throw APIError.invalid([("status", "must be SHIPPED or DELIVERED; other states are reached through the checkout itself")])
        }
        try await move(
            id, to: target, reason: nil, owner: nil, actor: identity.userId, eventType: eventType,
            refused: "an order cannot move to \(target.rawValue) from its current status", log: log)
    }

    /// Applies a transition and writes its event to the outbox in one transaction; 404 when
    /// the order is missing (or not `owner`'s), 409 when its state does not allow it.
    private func move(
        _ id: UUID, to target: OrderStatus, reason: CancellationReason?, owner: UUID?, actor: UUID, eventType: EventType, refused: String, log: Logger
    ) async throws {
        let event = try await pool.withTransaction { db -> EventEnvelope in
            guard let order = try await orders.ownerAndTrace(id, owner: owner, on: db) else { throw APIError.notFound("order") }
            // Locked first, so a refund request of the same order waits or is waited for: a
            // cancellation refunds everything and must not meet a partial refund.
            let before = try await orders.status(of: id, lock: true, on: db)
            if target == .cancelled {
                guard try await payments.refunds(ofOrder: id, on: db).isEmpty else {
                    throw APIError.conflict("the order has refunds; refund the rest instead of cancelling")
                }
            }
            guard try await orders.transition(id, to: target, reason: reason, on: db) != nil else { throw APIError.conflict(refused) }
            let event = try EventEnvelope(
                type: eventType, orderId: id, payload: OrderOutcome(orderId: id, userId: order.userId, reason: reason?.rawValue),
                traceparent: order.traceparent)
            try await OutboxStore.append(event, exchange: names.eventsExchange, on: db)
            try await audit.record(
                actor: actor, action: "order.\(target.rawValue.lowercased())", objectType: "order", objectId: id.uuidString.lowercased(),
                before: Self.statusJSON(before?.rawValue), after: Self.statusJSON(target.rawValue), on: db)
            return event
        }
        log.info(
            "order status changed",
            metadata: [LogKeys.orderID: "\(id)", LogKeys.orderStatus: "\(target.rawValue)", "emitted": "\(event.type)", "actor.id": "\(actor)"])
        outbox.publishSoon([event])
    }

    static func statusJSON(_ status: String?) -> String? { status.map { #"{"status":"\#($0)"}"# } }

    /// A refund asked for: an amount or order lines (quantities), a reason, optional restocking.
    struct RefundRequest: Sendable {
        let amountCents: Int?
        let lines: [(productId: UUID, quantity: Int)]?
        let reason: String
        let restock: Bool
    }

    /// What was recorded: the refund (PENDING) and its planned lines.
    struct RecordedRefund: Sendable {
        let id: UUID
        let amountCents: Int
        let currency: String
        let reason: String
        let restock: Bool
        let lines: [RefundRules.Plan.Line]
    }

    /// An ADMIN's refund: recorded PENDING with a `refund.requested` event in one transaction;
    /// the payment worker makes it at the provider.
    func requestRefund(_ orderId: UUID, _ input: RefundRequest, by identity: Identity, log: Logger) async throws -> RecordedRefund {
        guard identity.role.isAdmin else { throw APIError.forbidden("only admins refund orders") }
        // The contract's rule: at most 200 characters (code points), one line, not blank.
        let scalars = input.reason.unicodeScalars
        guard scalars.count <= 200, !scalars.contains(where: { $0 == "\r" || $0 == "\n" }), scalars.contains(where: { !$0.properties.isWhitespace }) else {
            throw APIError.invalid([("reason", "must be 1 to 200 characters on one line, not blank")])
        }
        let reason = input.reason.trimmingCharacters(in: .whitespaces)
        if let lines = input.lines, lines.count > 100 { throw APIError.invalid([("lines", "at most 100 lines")]) }
        let (recorded, event) = try await pool.withTransaction { db -> (RecordedRefund, EventEnvelope) in
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
                    amountCents: input.amountCents, lines: input.lines, restock: input.restock, ordered: ordered,
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
                    reason: reason, restock: input.restock, requestedBy: identity.userId,
                    lines: plan.lines.map { ($0.productId, $0.quantity, $0.amountCents) }), on: db)
            let owner = try await orders.ownerAndTrace(orderId, owner: nil, on: db)
            let event = try EventEnvelope(
                type: .refundRequested, orderId: orderId, payload: RefundRequested(orderId: orderId, refundId: refundId), traceparent: owner?.traceparent)
            try await OutboxStore.append(event, exchange: names.eventsExchange, on: db)
            try await audit.record(
                actor: identity.userId, action: "order.refund", objectType: "order", objectId: orderId.uuidString.lowercased(), before: nil,
                after: #"{"refund_id":"\#(refundId.uuidString.lowercased())","amount_cents":\#(plan.amountCents),"restock":\#(input.restock)}"#, on: db)
            return (
                RecordedRefund(
                    id: refundId, amountCents: plan.amountCents, currency: payment.currency, reason: reason, restock: input.restock, lines: plan.lines),
                event
            )
        }
        log.info(
            "refund requested",
            metadata: ["order": "\(orderId)", "refund": "\(recorded.id)", "amount_cents": "\(recorded.amountCents)", "actor.id": "\(identity.userId)"])
        outbox.publishSoon([event])
        return recorded
    }
}
