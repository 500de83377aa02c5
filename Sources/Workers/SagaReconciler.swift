import Domain
import Foundation
import Logging
import Messaging
import Metrics
import Postgres
import ServiceLifecycle
import Store

/// Re-drives orders whose saga stopped advancing: the safety net for a message that was
/// lost to the saga (purged from a queue by an operator, dropped by a broker failure, dead-
/// lettered and never replayed).
///
/// Every `interval` it looks for orders that have not moved for `stall` although a step is
/// missing, and re-emits the event that step needs, with a new message id, straight to the
/// one role's work queue that performs it (not the events exchange, whose other consumers
/// already did their part):
///
/// | order                                           | re-emitted           | to      |
/// | ----------------------------------------------- | -------------------- | ------- |
/// | `PENDING` (no reservation outcome)               | `order.placed`       | stock   |
/// | `AWAITING_PAYMENT` (no payment outcome)          | `payment.requested`  | payment |
/// | confirmed, reservation still `RESERVED`          | `order.confirmed`    | stock   |
/// | `CANCELLED`, stock still reserved or committed    | `order.cancelled`    | stock   |
/// | `CANCELLED`, charged, authorised or maybe charged | `order.cancelled`    | payment |
///
/// Each handler is idempotent per order, so re-driving a step that did happen (its answer
/// was only slow) changes nothing. An order whose event still waits in the outbox (the
/// broker is down) is left alone, and so is one whose step's work queue has messages ready:
/// under a backlog longer than `stall` (a saturated system) the order's message is most
/// likely among them, and a re-emitted copy would only queue behind it as extra work. Such an
/// order is re-driven once the queue has drained, if it still has not moved. When the depth
/// cannot be read (the broker is unreachable), the order is re-driven as before: the event
/// then waits in the outbox. Each order is re-driven with growing spacing
/// (`stall` × (n + 1)) and at most `maxRedrives` times, then logged for an operator.
/// Replicas share the work: one pass at a time holds a transaction-level advisory lock.
package struct SagaReconciler: Service {
    /// What the reconciler reads from its environment.
    package struct Settings: Sendable {
        /// `SAGA_STALL_SECONDS` (default 60): how long an order may sit without advancing.
        package var stall: Duration = .seconds(60)
        /// `SAGA_SWEEP_INTERVAL_MS` (default 15000): how often to look.
        package var interval: Duration = .seconds(15)
        /// `SAGA_MAX_REDRIVES` (default 10): re-drives per order before giving up on it.
        package var maxRedrives = 10
        /// `SAGA_LOOKBACK_SECONDS` (default 3600): how far back settled (cancelled or
        /// confirmed) orders are checked for a missing release, refund or commit.
        package var lookback: Duration = .seconds(3_600)
        /// The most stalled orders one query of a pass reads (100; tests make it small).
        package var passLimit = 100
        /// The defaults.
        package init() {}
    }

    /// One re-driven step.
    package struct Redrive: Sendable, Equatable {
        package let orderId: UUID
        package let step: String
        package let role: WorkerRole
    }

    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    let settings: Settings
    let backlog: WorkQueueBacklog
    let logger: Logger
    private let saga = SagaStore()
    private let orders = OrderStore()

    /// Creates the reconciler.
    package init(pool: PostgresPool, outbox: OutboxPublisher, names: MessagingNames, settings: Settings, backlog: WorkQueueBacklog, logger: Logger) {
        self.pool = pool
        self.outbox = outbox
        self.names = names
        self.settings = settings
        self.backlog = backlog
        self.logger = logger
    }

    package func run() async throws {
        await runPeriodically(every: settings.interval, task: "saga reconciler", logger: logger) {
            while try await reconcileOnce().redrives.count >= settings.passLimit {}
        }
    }

    private static let lockKey = "emporium.saga-reconciler"

    /// What one pass did.
    package struct Pass: Sendable, Equatable {
        /// The steps it re-drove.
        package var redrives: [Redrive] = []
        /// Stalled orders it left for a later pass, per work queue that had messages ready.
        package var deferred: [String: Int] = [:]
    }

    /// One pass: finds stalled orders and re-drives them, except those queued behind a backlog.
    @discardableResult
    package func reconcileOnce() async throws -> Pass {
        let (redrives, emitted, exhausted, deferred) = try await pool.withTransaction {
            db -> ([Redrive], [(EventEnvelope, String)], [UUID], [String: Int]) in
            // One pass at a time across replicas; the others skip this round.
            guard try await db.tryAdvisoryTransactionLock(Self.lockKey) else { return ([], [], [], [:]) }
            var stalled = try await saga.stalled(
                stall: settings.stall, lookback: settings.lookback, maxRedrives: settings.maxRedrives, limit: settings.passLimit, on: db)
            // Every queue a step goes to, not only this page's: a second page may need the others.
            let ready = stalled.isEmpty ? [:] : await backlog.ready(in: Set(queues(of: Self.steps)))
            let busyQueues = Set(ready.filter { $0.value > 0 }.keys)
            let busySteps = Set(Self.steps.filter { queues(of: [$0]).contains(where: busyQueues.contains) })
            // Orders deferred behind a backlog may fill the whole page: look past them once, so
            // an order lost on a queue that is clear is not held up by another queue's backlog.
            if stalled.count == settings.passLimit, stalled.contains(where: { !busySteps.isDisjoint(with: $0.steps) }) {
                let seen = Set(stalled.map(\.orderId))
                stalled += try await saga.stalled(
                    stall: settings.stall, lookback: settings.lookback, maxRedrives: settings.maxRedrives, skipping: busySteps,
                    limit: settings.passLimit, on: db
                ).filter { !seen.contains($0.orderId) }
            }
            var redrives: [Redrive] = []
            var emitted: [(EventEnvelope, String)] = []
            var exhausted: [UUID] = []
            var deferred: [String: Int] = [:]
            for order in stalled {
                if order.redrives >= settings.maxRedrives {
                    exhausted.append(order.orderId)
                    continue
                }
                // Queued behind a backlog, not lost: wait until the queue has drained.
                if let busy = queues(of: order.steps).first(where: busyQueues.contains) {
                    deferred[busy, default: 0] += 1
                    continue
                }
                for step in order.steps {
                    guard let (event, role) = try await event(for: step, order: order, db) else { continue }
                    let queue = names.queue(role)
                    try await OutboxStore.append(event, to: .queue(queue), on: db)
                    emitted.append((event, queue))
                    redrives.append(Redrive(orderId: order.orderId, step: step, role: role))
                }
                try await saga.recordRedrive(order.orderId, steps: order.steps, on: db)
            }
            // Counted once: the next pass no longer selects them (redrives past the limit).
            if !exhausted.isEmpty { try await saga.markReported(exhausted, on: db) }
            return (redrives, emitted, exhausted, deferred)
        }
        for (queue, orders) in deferred.sorted(by: { $0.key < $1.key }) {
            Counter(label: "saga_redrives_deferred_total", dimensions: [("queue", queue)]).increment(by: orders)
            logger.info(
                "saga re-drive deferred: the orders have not advanced, but their step's queue has messages ready; they are re-driven once it drains",
                metadata: ["amqp.queue": "\(queue)", "saga.orders": "\(orders)"])
        }
        for (event, queue) in emitted { outbox.publishSoon([event], toQueue: queue) }
        for redrive in redrives {
            Counter(label: "saga_redrives_total", dimensions: [("step", redrive.step)]).increment()
            logger.warning(
                "saga re-driven: the order did not advance; its step's event was emitted again",
                metadata: [
                    "order.id": "\(redrive.orderId)", "saga.step": "\(redrive.step)", "amqp.queue": "\(names.queue(redrive.role))",
                ])
        }
        for orderId in exhausted {
            Counter(label: "saga_redrives_exhausted_total").increment()
            logger.error(
                "saga stalled after \(settings.maxRedrives) re-drives; an operator must look at this order (emporium dlq list --order)",
                metadata: ["order.id": "\(orderId)"])
        }
        return Pass(redrives: redrives, deferred: deferred)
    }

    /// Every step the reconciler re-drives.
    static let steps = ["reserve", "pay", "commit", "release", "refund"]

    /// The role that performs `step`.
    static func role(for step: String) -> WorkerRole? {
        switch step {
        case "reserve", "commit", "release": .stock
        case "pay", "refund": .payment
        default: nil
        }
    }

    /// The work queues the re-driven events of `steps` would go to.
    private func queues(of steps: [String]) -> [String] {
        steps.compactMap { Self.role(for: $0).map(names.queue) }
    }

    /// The event that makes `step` happen again for a stalled order, and the role that
    /// performs it.
    private func event(for step: String, order: SagaStore.Stalled, _ db: PostgresConnection) async throws -> (EventEnvelope, WorkerRole)? {
        guard let role = Self.role(for: step) else { return nil }
        let orderId = order.orderId, userId = order.userId, traceparent = order.traceparent
        let event: EventEnvelope
        switch step {
        case "reserve":
            let payload = OrderPlaced(
                orderId: orderId, userId: userId, totalCents: order.totalCents, currency: order.currency,
                paymentMethod: order.paymentMethod, lines: try await orders.lines(of: orderId, on: db))
            event = try EventEnvelope(type: .orderPlaced, orderId: orderId, payload: payload, traceparent: traceparent)
        case "pay":
            // A manual payment confirmed by its customer carries the card on the payment row.
            let payload = PaymentRequested(
                orderId: orderId, userId: userId, amountCents: order.totalCents, currency: order.currency,
                paymentMethod: order.confirmedMethod ?? order.paymentMethod)
            event = try EventEnvelope(type: .paymentRequested, orderId: orderId, payload: payload, traceparent: traceparent)
        case "commit":
            event = try EventEnvelope(
                type: .orderConfirmed, orderId: orderId, payload: OrderOutcome(orderId: orderId, userId: userId), traceparent: traceparent)
        default:  // "release", "refund"
            event = try EventEnvelope(
                type: .orderCancelled, orderId: orderId,
                payload: OrderOutcome(orderId: orderId, userId: userId, reason: order.cancellationReason), traceparent: traceparent)
        }
        return (event, role)
    }
}
