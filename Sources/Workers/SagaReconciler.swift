import Domain
import Foundation
import Logging
import Messaging
import Metrics
import Postgres
import ServiceLifecycle

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
/// | `CANCELLED`, charged or possibly charged         | `order.cancelled`    | payment |
///
/// Each handler is idempotent per order, so re-driving a step that did happen (its answer
/// was only slow) changes nothing. An order whose event still waits in the outbox (the
/// broker is down) is left alone; each order is re-driven with growing spacing
/// (`stall` × (n + 1)) and at most `maxRedrives` times, then logged for an operator.
/// Replicas share the work: one pass at a time holds a transaction-level advisory lock.
public struct SagaReconciler: Service {
    /// What the reconciler reads from its environment.
    public struct Settings: Sendable {
        /// `SAGA_STALL_SECONDS` (default 60): how long an order may sit without advancing.
        public var stall: Duration = .seconds(60)
        /// `SAGA_SWEEP_INTERVAL_MS` (default 15000): how often to look.
        public var interval: Duration = .seconds(15)
        /// `SAGA_MAX_REDRIVES` (default 10): re-drives per order before giving up on it.
        public var maxRedrives = 10
        /// `SAGA_LOOKBACK_SECONDS` (default 3600): how far back settled (cancelled or
        /// confirmed) orders are checked for a missing release, refund or commit.
        public var lookback: Duration = .seconds(3_600)
        /// The defaults.
        public init() {}
    }

    /// One re-driven step.
    public struct Redrive: Sendable, Equatable {
        public let orderId: UUID
        public let step: String
        public let role: WorkerRole
    }

    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    let settings: Settings
    let logger: Logger

    /// Creates the reconciler.
    public init(pool: PostgresPool, outbox: OutboxPublisher, names: MessagingNames, settings: Settings, logger: Logger) {
        self.pool = pool
        self.outbox = outbox
        self.names = names
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        await runPeriodically(every: settings.interval, task: "saga reconciler", logger: logger) {
            while try await reconcileOnce().count == Self.batchLimit {}
        }
    }

    /// The most orders one pass re-drives.
    static let batchLimit = 100

    private static let lockKey = "emporium.saga-reconciler"

    /// One pass: finds stalled orders and re-drives them; returns what it re-drove.
    @discardableResult
    public func reconcileOnce() async throws -> [Redrive] {
        let stall = seconds(settings.stall), lookback = seconds(settings.lookback)
        let (redrives, emitted, exhausted) = try await pool.withTransaction { db -> ([Redrive], [(EventEnvelope, String)], [UUID]) in
            // One pass at a time across replicas; the others skip this round.
            guard try await db.query("SELECT pg_try_advisory_xact_lock(hashtext($1)) AS locked", [Self.lockKey])[0].decode(Bool.self, "locked") else {
                return ([], [], [])
            }
            let rows = try await db.query(Self.candidates, [stall, lookback, settings.maxRedrives, Self.batchLimit])
            var redrives: [Redrive] = []
            var emitted: [(EventEnvelope, String)] = []
            var exhausted: [UUID] = []
            for row in rows {
                let orderId = try row.decode(UUID.self, "id")
                if try row.decode(Int.self, "redrives") >= settings.maxRedrives {
                    exhausted.append(orderId)
                    continue
                }
                let steps = try row.decode([String].self, "steps")
                for step in steps {
                    guard let (event, role) = try await event(for: step, row: row, db) else { continue }
                    let queue = names.queue(role)
                    try await Outbox.append(event, to: .queue(queue), on: db)
                    emitted.append((event, queue))
                    redrives.append(Redrive(orderId: orderId, step: step, role: role))
                }
                try await db.query(
                    """
                    INSERT INTO saga_redrives (order_id, redrives, last_step, last_redriven_at) VALUES ($1, 1, $2, now())
                    ON CONFLICT (order_id) DO UPDATE SET redrives = saga_redrives.redrives + 1, last_step = $2, last_redriven_at = now()
                    """, [orderId, steps.joined(separator: ",")])
            }
            if !exhausted.isEmpty {
                // Counted once: the next pass no longer selects them (redrives past the limit).
                try await db.query("UPDATE saga_redrives SET redrives = redrives + 1 WHERE order_id = ANY($1)", [exhausted])
            }
            return (redrives, emitted, exhausted)
        }
        for (event, queue) in emitted { outbox.publishSoon([event], toQueue: queue) }
        for redrive in redrives {
            Counter(label: "saga_redrives_total", dimensions: [("step", redrive.step)]).increment()
            logger.warning("saga re-driven: the order did not advance; its step's event was emitted again", metadata: [
                "order.id": "\(redrive.orderId)", "saga.step": "\(redrive.step)", "amqp.queue": "\(names.queue(redrive.role))",
            ])
        }
        for orderId in exhausted {
            Counter(label: "saga_redrives_exhausted_total").increment()
            logger.error("saga stalled after \(settings.maxRedrives) re-drives; an operator must look at this order (emporium dlq list --order)",
                         metadata: ["order.id": "\(orderId)"])
        }
        return redrives
    }

    /// The event that makes `step` happen again for the order in `row`, and the role that
    /// performs it.
    private func event(for step: String, row: PostgresRow, _ db: PostgresConnection) async throws -> (EventEnvelope, WorkerRole)? {
        let orderId = try row.decode(UUID.self, "id")
        let userId = try row.decode(UUID.self, "user_id")
        let traceparent = try row.decode(String?.self, "trace_parent")
        switch step {
        case "reserve":
            let lines = try await db.query("SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY product_id", [orderId]).map {
                OrderLine(productId: try $0.decode(UUID.self, "product_id"), quantity: try $0.decode(Int.self, "quantity"))
            }
            let payload = OrderPlaced(orderId: orderId, userId: userId, totalCents: try row.decode(Int.self, "total_cents"),
                                      currency: try row.decode(String.self, "currency"), paymentMethod: try row.decode(String.self, "payment_method"), lines: lines)
            return (try EventEnvelope(type: EventType.orderPlaced, orderId: orderId, payload: payload, traceparent: traceparent), .stock)
        case "pay":
            // A manual payment confirmed by its customer carries the card on the payment row.
            let method = try row.decode(String?.self, "confirmed_method") ?? row.decode(String.self, "payment_method")
            let payload = PaymentRequested(orderId: orderId, userId: userId, amountCents: try row.decode(Int.self, "total_cents"),
                                           currency: try row.decode(String.self, "currency"), paymentMethod: method)
            return (try EventEnvelope(type: EventType.paymentRequested, orderId: orderId, payload: payload, traceparent: traceparent), .payment)
        case "commit":
            return (try EventEnvelope(type: EventType.orderConfirmed, orderId: orderId, payload: OrderOutcome(orderId: orderId, userId: userId),
                                      traceparent: traceparent), .stock)
        case "release", "refund":
            let reason = try row.decode(String?.self, "cancellation_reason")
            return (try EventEnvelope(type: EventType.orderCancelled, orderId: orderId, payload: OrderOutcome(orderId: orderId, userId: userId, reason: reason),
                                      traceparent: traceparent), step == "release" ? .stock : .payment)
        default:
            return nil
        }
    }

    /// Stalled orders and their missing steps. Parameters: $1 stall and $2 lookback (seconds),
    /// $3 the re-drive limit, $4 the batch size. Orders at the limit come back once more (with
    /// `redrives >= $3`) to be reported, then never again.
    static let candidates = """
        WITH stalled AS (
          SELECT o.id, ARRAY['reserve'] AS steps FROM orders o
          WHERE o.status = 'PENDING' AND o.updated_at < now() - make_interval(secs => $1)
          UNION ALL
          SELECT o.id, ARRAY['pay'] FROM orders o
          WHERE o.status = 'AWAITING_PAYMENT' AND o.updated_at < now() - make_interval(secs => $1)
            AND (o.payment_method <> 'manual'
                 OR EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.method <> 'manual'))
          UNION ALL
          SELECT DISTINCT o.id, ARRAY['commit'] FROM stock_reservations r JOIN orders o ON o.id = r.order_id
          WHERE r.status = 'RESERVED' AND o.status IN ('CONFIRMED', 'SHIPPED', 'DELIVERED') AND o.updated_at < now() - make_interval(secs => $1)
          UNION ALL
          SELECT o.id, array_remove(ARRAY[
                   CASE WHEN EXISTS (SELECT 1 FROM stock_reservations r WHERE r.order_id = o.id AND r.status IN ('RESERVED', 'COMMITTED'))
                        THEN 'release' END,
                   CASE WHEN EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status IN ('SUCCEEDED', 'PENDING'))
                          OR (NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id)
                              AND EXISTS (SELECT 1 FROM order_status_history h WHERE h.order_id = o.id AND h.to_status = 'AWAITING_PAYMENT'))
                        THEN 'refund' END], NULL)
          FROM orders o
          WHERE o.status = 'CANCELLED' AND o.updated_at < now() - make_interval(secs => $1)
            AND o.updated_at > now() - make_interval(secs => $1 + $2)
        )
        SELECT o.id, o.user_id, o.total_cents, o.currency, o.payment_method, o.cancellation_reason, o.trace_parent,
               (SELECT p.method FROM payments p WHERE p.order_id = o.id AND p.method <> 'manual') AS confirmed_method,
               coalesce(r.redrives, 0) AS redrives, s.steps
        FROM stalled s JOIN orders o ON o.id = s.id
        LEFT JOIN saga_redrives r ON r.order_id = o.id
        WHERE cardinality(s.steps) > 0
          AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.order_id = o.id AND x.published_at IS NULL)
          AND (r.order_id IS NULL
               OR (r.redrives < $3 AND r.last_redriven_at < now() - make_interval(secs => $1 * (r.redrives + 1)))
               OR r.redrives = $3)
        ORDER BY o.updated_at
        LIMIT $4
        """

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
