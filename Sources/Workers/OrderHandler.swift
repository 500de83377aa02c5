import Domain
import Foundation
import Messaging
import Postgres
import ServiceLifecycle

/// The saga coordinator: moves each order through its states with conditional updates and
/// emits the next command. An event that finds the order elsewhere changes nothing.
public struct OrderHandler: EventHandler {
    public var consumerName: String { "order" }
    /// Creates the handler.
    public init() {}

    public func handle(_ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        switch event.type {
        case EventType.stockReserved:
            let orderId = try event.payload(as: StockOutcome.self).orderId
            guard let order = try await OrderTransition.apply(orderId, to: .awaitingPayment, on: db) else { return [] }
            return [try EventEnvelope(
                type: EventType.paymentRequested, orderId: orderId,
                payload: PaymentRequested(orderId: orderId, userId: order.userId, amountCents: order.totalCents, currency: order.currency, paymentMethod: order.paymentMethod),
                traceparent: event.traceparent)]
        case EventType.stockRejected:
            return try await cancel(try event.payload(as: StockOutcome.self).orderId, reason: .outOfStock, cause: event, db)
        case EventType.paymentSucceeded:
            let payment = try event.payload(as: PaymentOutcome.self)
            let orderId = payment.orderId
            guard let order = try await OrderTransition.apply(orderId, to: .confirmed, on: db) else {
                // Charged after the order was cancelled (e.g. it expired meanwhile): refund.
                let status = try await db.query("SELECT status, user_id FROM orders WHERE id = $1", [orderId]).first
                guard let status, try status.decode(String.self, "status") == OrderStatus.cancelled.rawValue else { return [] }
                return [try EventEnvelope(type: EventType.paymentRefundRequested, orderId: orderId,
                                          payload: OrderOutcome(orderId: orderId, userId: try status.decode(UUID.self, "user_id"), reason: "cancelled_before_charge"),
                                          traceparent: event.traceparent)]
            }
            return [try EventEnvelope(type: EventType.orderConfirmed, orderId: orderId, payload: OrderOutcome(orderId: orderId, userId: order.userId), traceparent: event.traceparent)]
        case EventType.paymentFailed:
            return try await cancel(try event.payload(as: PaymentOutcome.self).orderId, reason: .paymentFailed, cause: event, db)
        default:
            throw PermanentFailure("order worker does not handle \(event.type)")
        }
    }

    private func cancel(_ orderId: UUID, reason: CancellationReason, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        guard let order = try await OrderTransition.apply(orderId, to: .cancelled, reason: reason, on: db) else { return [] }
        return [try EventEnvelope(type: EventType.orderCancelled, orderId: orderId,
                                  payload: OrderOutcome(orderId: orderId, userId: order.userId, reason: reason.rawValue), traceparent: cause.traceparent)]
    }
}

/// Cancels orders that waited for payment longer than `timeout` (card orders) or
/// `manualTimeout` (orders the customer pays later, `manual`), with reason `expired`, and
/// announces it, so the stock worker releases their stock and the payment worker refunds a
/// charge that lands late. Runs in the order worker; replicas share the work through
/// `FOR UPDATE SKIP LOCKED`.
public struct PaymentTimeoutSweeper: Service {
    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    let timeout: Duration
    let manualTimeout: Duration
    let interval: Duration

    /// Creates the sweeper.
    public init(pool: PostgresPool, outbox: OutboxPublisher, names: MessagingNames, timeout: Duration, manualTimeout: Duration, interval: Duration) {
        self.pool = pool
        self.outbox = outbox
        self.names = names
        self.timeout = timeout
        self.manualTimeout = manualTimeout
        self.interval = interval
    }

    public func run() async throws {
        await runPeriodically(every: interval, task: "payment timeout sweep", logger: outbox.logger) {
            while try await sweepOnce() == 100 {}
        }
    }

    /// Cancels up to 100 expired orders; returns how many.
    @discardableResult
    public func sweepOnce() async throws -> Int {
        func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
        let events = try await pool.withTransaction { db -> [EventEnvelope] in
            let expired = try await db.query(
                """
                SELECT id, trace_parent FROM orders
                WHERE status = 'AWAITING_PAYMENT'
                  AND updated_at < now() - make_interval(secs => CASE WHEN payment_method = $3 THEN $2 ELSE $1 END)
                ORDER BY updated_at LIMIT 100 FOR UPDATE SKIP LOCKED
                """,
                [seconds(timeout), seconds(manualTimeout), PaymentIds.manualMethod])
            var events: [EventEnvelope] = []
            for row in expired {
                let orderId = try row.decode(UUID.self, "id")
                guard let moved = try await OrderTransition.apply(orderId, to: .cancelled, reason: .expired, on: db) else { continue }
                let event = try EventEnvelope(type: EventType.orderCancelled, orderId: orderId,
                                              payload: OrderOutcome(orderId: orderId, userId: moved.userId, reason: CancellationReason.expired.rawValue),
                                              traceparent: try row.decode(String?.self, "trace_parent"))
                try await Outbox.append(event, exchange: names.eventsExchange, on: db)
                events.append(event)
            }
            return events
        }
        if !events.isEmpty {
            outbox.logger.info("cancelled orders that waited too long for payment", metadata: ["count": "\(events.count)"])
            outbox.publishSoon(events)
        }
        return events.count
    }
}

