import Domain
import Foundation
import Messaging
import Postgres
import ServiceLifecycle
import Store

/// Cancels orders that waited for payment longer than `timeout` (card orders) or
/// `manualTimeout` (orders the customer pays later, `manual`), with reason `expired`, and
/// announces it, so the stock worker releases their stock and the payment worker refunds a
/// charge that lands late. Runs in the order worker; replicas share the work through
/// `FOR UPDATE SKIP LOCKED`.
package struct PaymentTimeoutSweeper: Service {
    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    let timeout: Duration
    let manualTimeout: Duration
    let interval: Duration
    private let orders = OrderStore()
    /// Orders cancelled per transaction.
    static let batchSize = 100

    /// Creates the sweeper.
    package init(pool: PostgresPool, outbox: OutboxPublisher, names: MessagingNames, timeout: Duration, manualTimeout: Duration, interval: Duration) {
        self.pool = pool
        self.outbox = outbox
        self.names = names
        self.timeout = timeout
        self.manualTimeout = manualTimeout
        self.interval = interval
    }

    package func run() async throws {
        await runPeriodically(every: interval, task: "payment timeout sweep", logger: outbox.logger) {
            while try await sweepOnce() == Self.batchSize {}
        }
    }

    /// Cancels up to ``batchSize`` expired orders; returns how many.
    @discardableResult
    package func sweepOnce() async throws -> Int {
        let events = try await pool.withTransaction { db -> [EventEnvelope] in
            var events: [EventEnvelope] = []
            for expired in try await orders.expiredAwaitingPayment(cardTimeout: timeout, manualTimeout: manualTimeout, limit: Self.batchSize, on: db) {
                guard let moved = try await orders.transition(expired.id, to: .cancelled, reason: .expired, on: db) else { continue }
                let event = try EventEnvelope(
                    type: .orderCancelled, orderId: expired.id,
                    payload: OrderOutcome(orderId: expired.id, userId: moved.userId, reason: CancellationReason.expired.rawValue),
                    traceparent: expired.traceparent)
                try await OutboxStore.append(event, exchange: names.eventsExchange, on: db)
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
