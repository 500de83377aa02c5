import AMQP
import Domain
import Foundation
import Logging
import Messaging
import Postgres
import TestSupport
import Testing
import Workers

/// The saga reconciler re-drives orders whose messages were lost mid-saga (here: purged from
/// a work queue by an operator's mistake, so no worker ever sees them).
@Suite("Saga reconciler: lost messages are re-driven", .timeLimit(.minutes(3)))
struct ReconcilerTests {
    /// Short settings so a test sees a stall: `stall` plus one `interval` is the promise.
    static var options: Stack.Options {
        var options = Stack.Options()
        options.saga.stall = .seconds(3)
        options.saga.interval = .seconds(1)
        return options
    }

    /// The deadline for a purged order to end terminal: the re-drive is due `stall` plus one
    /// sweep after the order stopped moving; then the re-driven steps run through four
    /// in-process workers. Alone those steps take well under a second, but in `make test`'s
    /// parallel phase about forty stacks share this process's two executor threads, and a
    /// CI run saw them take longer than 8 s. A deadline, not a speed claim: the re-drive's
    /// own timing is measured from the database (`redriveDelay`).
    static var deadline: Duration { options.saga.stall + options.saga.interval + .seconds(30) }

    // The reconciler may re-drive a step before the test purges its queue (the stall is
    // short here): the purge then takes the re-drive too, and the next re-drive, spaced
    // `stall` × 2, still lands well within the deadline. So the tests purge "at least one".

    /// An order in a cart of its own, placed; returns (product, order, token).
    private func placeOne(_ stack: Stack, quantity: Int = 2, paymentMethod: String = "tok_visa") async throws -> (UUID, UUID, String) {
        let (_, productId, (_, token)) = try await stack.filledCart(stock: 10, quantity: quantity)
        return (productId, try await stack.placeOrder(token, paymentMethod: paymentMethod), token)
    }

    /// From the order's move into `status` to its re-drive, when it was re-driven exactly once
    /// (a later re-drive overwrites the time of the first).
    private func redriveDelay(_ stack: Stack, _ orderId: UUID, after status: String) async throws -> Duration? {
        let rows = try await stack.db.query(
            """
            SELECT extract(epoch FROM r.last_redriven_at - h.changed_at)::float8 AS delay
            FROM saga_redrives r JOIN order_status_history h ON h.order_id = r.order_id AND h.to_status = $2
            WHERE r.order_id = $1 AND r.redrives = 1
            """, [orderId, status])
        return try rows.first.map { .milliseconds(Int(try $0.decode(Double.self, "delay") * 1_000)) }
    }

    /// Where a purged order stands, for a failure message.
    private func diagnose(_ stack: Stack, _ orderId: UUID, since: ContinuousClock.Instant) async throws -> String {
        let rows = try await stack.db.query(
            """
            SELECT o.status, extract(epoch FROM now() - o.created_at)::float8 AS age, extract(epoch FROM now() - o.updated_at)::float8 AS still,
                   r.redrives, r.last_step, extract(epoch FROM now() - r.last_redriven_at)::float8 AS since_redrive,
                   (SELECT count(*) FROM stock_reservations s WHERE s.order_id = o.id) AS reservations
            FROM orders o LEFT JOIN saga_redrives r ON r.order_id = o.id WHERE o.id = $1
            """, [orderId])
        let row = rows[0]
        return
            "after purge \(ContinuousClock.now - since): status \(try row.decode(String.self, "status")), age \(try row.decode(Double.self, "age")) s, unchanged \(try row.decode(Double.self, "still")) s, redrives \(try row.decode(Int?.self, "redrives") ?? 0) last \(try row.decode(String?.self, "last_step") ?? "-") \(try row.decode(Double?.self, "since_redrive") ?? -1) s ago, reservations \(try row.decode(Int.self, "reservations"))"
    }

    /// A reconciler of this test's own on the stack's database and broker (`backlog` reads
    /// the queue depths; a test may point it at a broker that cannot answer).
    private func ownReconciler(_ stack: Stack, settings: SagaReconciler.Settings = options.saga, backlog: AMQPConfiguration? = nil) -> SagaReconciler {
        var logger = Logger(label: "test.reconciler")
        logger.logLevel = .critical
        let outbox = OutboxPublisher(
            publisher: AMQPPublisher(configuration: stack.amqp), pool: stack.db, exchange: stack.names.eventsExchange, logger: logger)
        return SagaReconciler(
            pool: stack.db, outbox: outbox, names: stack.names, settings: settings, backlog: WorkQueueBacklog(amqp: backlog ?? stack.amqp), logger: logger)
    }

    /// Waits until none of `orders` has moved for longer than `stall` and none has an event
    /// still waiting in the outbox: stalled, as far as the database can tell (the reconciler
    /// leaves an order with an unpublished event to the relays).
    private func awaitStalled(_ stack: Stack, _ orders: [UUID], stall: Duration = options.saga.stall) async -> Bool {
        await TestEnvironment.eventually(timeout: .seconds(30)) {
            let still = try? await stack.count(
                "SELECT count(*) FROM orders WHERE id = ANY($1) AND updated_at < now() - make_interval(secs => $2)",
                [orders, stall.secondsWithFraction + 0.5])
            let waiting = await unpublished(stack, orders)
            return still == orders.count && waiting == 0
        }
    }

    /// Waits until `role`'s queue has a message ready and every event of `orders` is marked
    /// published. Only then does a purge take the one copy: an event whose mark is late (under
    /// the parallel tests' load, a mark can trail its publish by seconds) is the relays' to
    /// publish again, and the reconciler rightly leaves its order to them. Seen in a full run:
    /// a purged order confirmed without a re-drive, and a reconciler pass that found nothing.
    private func awaitQueued(_ stack: Stack, _ role: WorkerRole, _ orders: [UUID]) async -> Bool {
        await TestEnvironment.eventually(timeout: .seconds(30)) {
            let ready = (try? await stack.queueDepth(role)) ?? 0
            let waiting = await unpublished(stack, orders)
            return ready >= 1 && waiting == 0
        }
    }

    /// How many of `orders`' events wait in the outbox unpublished; nil if it cannot be read.
    private func unpublished(_ stack: Stack, _ orders: [UUID]) async -> Int? {
        try? await stack.count("SELECT count(*) FROM outbox WHERE order_id = ANY($1) AND published_at IS NULL", [orders])
    }

    @Test("a payment request purged from the payment queue: the order is re-driven to CONFIRMED, not before SAGA_STALL_SECONDS, charged once")
    func purgedPaymentRequest() async throws {
        var options = Self.options
        options.excludedRoles = [.payment]
        try await Stack.run(options) { stack in
            let (productId, orderId, _) = try await placeOne(stack)
            #expect(await awaitQueued(stack, .payment, [orderId]))
            #expect(try await stack.orderStatus(orderId).status == "AWAITING_PAYMENT")
            #expect(try await stack.purge(.payment) >= 1)
            let payment = try stack.startRole(.payment, options: Self.options)
            #expect(try await stack.awaitTerminal(orderId, timeout: Self.deadline).status == "CONFIRMED")
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND kind = 'charge'", [orderId]) == 1)
            #expect(try await stack.count("SELECT count(*) FROM saga_redrives WHERE order_id = $1 AND last_step = 'pay'", [orderId]) == 1)
            // Never early: the re-drive waits for the stall. How late it came is a figure (the
            // promise is one sweep), printed rather than asserted: the sweep shares this loaded process.
            if let delay = try await redriveDelay(stack, orderId, after: "AWAITING_PAYMENT") {
                #expect(delay >= Self.options.saga.stall)
                print(
                    "saga reconciler: payment re-driven \(delay) after the order stopped moving (stall \(Self.options.saga.stall), sweep every \(Self.options.saga.interval))"
                )
            }
            #expect(try await stack.stock(productId) == 8)
            await payment.stop()
        }
    }

    @Test("order.placed purged from the stock queue: the order is re-driven, reserved once, and CONFIRMED")
    func purgedPlacement() async throws {
        var options = Self.options
        options.excludedRoles = [.stock]
        try await Stack.run(options) { stack in
            let (productId, orderId, _) = try await placeOne(stack)
            #expect(await awaitQueued(stack, .stock, [orderId]))
            #expect(try await stack.purge(.stock) >= 1)
            let purgedAt = ContinuousClock.now
            let stockWorker = try stack.startRole(.stock, options: Self.options)
            let outcome = try await stack.awaitTerminal(orderId, timeout: Self.deadline)
            let state = outcome.status == "CONFIRMED" ? "" : try await diagnose(stack, orderId, since: purgedAt)
            #expect(outcome.status == "CONFIRMED", "\(state)")
            #expect(try await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1", [orderId]) == 1)
            #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == 8 })
            await stockWorker.stop()
        }
    }

    @Test(
        "a re-drive of a step that did happen is harmless: stock.reserved purged, order.placed again finds the reservation and answers without taking stock twice"
    )
    func redriveOfCompletedStep() async throws {
        var options = Self.options
        options.excludedRoles = [.order]
        try await Stack.run(options) { stack in
            let (productId, orderId, _) = try await placeOne(stack)
            // The stock worker reserved and answered; the answer is lost before the order worker.
            #expect(await awaitQueued(stack, .order, [orderId]))
            #expect(try await stack.stock(productId) == 8)
            #expect(try await stack.purge(.order) >= 1)
            let purgedAt = ContinuousClock.now
            let orderWorker = try stack.startRole(.order, options: Self.options)
            let outcome = try await stack.awaitTerminal(orderId, timeout: Self.deadline)
            let state = outcome.status == "CONFIRMED" ? "" : try await diagnose(stack, orderId, since: purgedAt)
            #expect(outcome.status == "CONFIRMED", "\(state)")
            #expect(try await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1", [orderId]) == 1)
            #expect(try await stack.stock(productId) == 8)
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND kind = 'charge'", [orderId]) == 1)
            await orderWorker.stop()
        }
    }

    @Test("a cancellation whose release was purged from the stock queue: the reservation is released and the stock is back")
    func purgedRelease() async throws {
        var options = Self.options
        options.excludedRoles = [.stock]
        try await Stack.run(options) { stack in
            var stockWorker = try stack.startRole(.stock, options: Self.options)
            // A manual payment keeps the order waiting with its stock reserved.
            let (productId, orderId, token) = try await placeOne(stack, paymentMethod: "manual")
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.orderStatus(orderId).status) == "AWAITING_PAYMENT" })
            #expect(try await stack.stock(productId) == 8)
            await stockWorker.stop()
            let cancelled = try await stack.request(.post, "/api/v1/orders/\(orderId)/cancel", token: token)
            #expect(cancelled.status == .ok)
            #expect(await awaitQueued(stack, .stock, [orderId]))
            #expect(try await stack.purge(.stock) >= 1)
            stockWorker = try stack.startRole(.stock, options: Self.options)
            #expect(await TestEnvironment.eventually(timeout: Self.deadline) { (try? await stack.stock(productId)) == 10 })
            #expect(try await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1 AND status = 'RELEASED'", [orderId]) == 1)
            await stockWorker.stop()
        }
    }

    @Test(
        "an order queued behind a backlog is not re-driven while its step's queue has messages ready; once the queue is empty (here: purged) it is, and it ends CONFIRMED, reserved once"
    )
    func backlogDefersRedrive() async throws {
        var options = Self.options
        // No stock worker (the backlog stays) and no order worker (no reconciler of the
        // stack's own: this test's passes are the only ones, so the advisory lock is theirs).
        options.excludedRoles = [.stock, .order]
        try await Stack.run(options) { stack in
            let (productId, orderId, _) = try await placeOne(stack)
            #expect(await awaitQueued(stack, .stock, [orderId]))
            let reconciler = ownReconciler(stack)
            #expect(await awaitStalled(stack, [orderId]))
            #expect(try await stack.orderStatus(orderId).status == "PENDING")

            let waiting = try await reconciler.reconcileOnce()
            #expect(waiting.redrives.isEmpty)
            #expect(waiting.deferred == [stack.names.queue(.stock): 1])
            #expect(try await stack.count("SELECT count(*) FROM saga_redrives WHERE order_id = $1", [orderId]) == 0)
            #expect(try await stack.count("SELECT count(*) FROM outbox WHERE order_id = $1 AND published_at IS NULL", [orderId]) == 0)

            // The message is gone and the queue is empty: now the order is re-driven.
            #expect(try await stack.purge(.stock) >= 1)
            let lost = try await reconciler.reconcileOnce()
            #expect(lost.deferred.isEmpty)
            #expect(lost.redrives.map(\.orderId) == [orderId])
            #expect(lost.redrives.map(\.step) == ["reserve"])
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM outbox WHERE order_id = $1 AND event_type = 'order.placed' AND routing_key = $2",
                    [orderId, stack.names.queue(.stock)])
                    == 1)

            // The workers' relays publish the re-driven event; the saga runs to its end once.
            let stockWorker = try stack.startRole(.stock, options: Self.options)
            let orderWorker = try stack.startRole(.order, options: Self.options)
            #expect(try await stack.awaitTerminal(orderId, timeout: Self.deadline).status == "CONFIRMED")
            #expect(try await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1", [orderId]) == 1)
            #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == 8 })
            await orderWorker.stop()
            await stockWorker.stop()
        }
    }

    @Test("when the queue's depth cannot be read (the broker is unreachable), a stalled order is re-driven as before, promptly")
    func unreadableBacklogRedrives() async throws {
        var options = Self.options
        options.excludedRoles = [.stock, .order]
        try await Stack.run(options) { stack in
            let (_, orderId, _) = try await placeOne(stack)
            #expect(await awaitQueued(stack, .stock, [orderId]))
            var unreachable = stack.amqp
            unreachable.port = 1
            let reconciler = ownReconciler(stack, backlog: unreachable)
            #expect(await awaitStalled(stack, [orderId]))
            let started = ContinuousClock.now
            let pass = try await reconciler.reconcileOnce()
            let took = ContinuousClock.now - started
            #expect(pass.deferred.isEmpty)
            #expect(pass.redrives.map(\.orderId) == [orderId])
            // Bounded by the depth read's connect deadline (3 s), not a hang.
            #expect(took < .seconds(20), "a pass took \(took)")
            #expect(try await stack.count("SELECT count(*) FROM saga_redrives WHERE order_id = $1", [orderId]) == 1)
        }
    }

    @Test(
        "a backlog on one queue does not hold up an order lost on another: with a page of one, the order deferred behind the payment queue's backlog is passed over; the newer order is left while its order.placed waits in the stock queue and re-driven once it was purged"
    )
    func backlogDoesNotHoldUpOtherQueues() async throws {
        // The stack's own reconciler waits ten minutes (the default of `Stack.Options`), so
        // only this test's passes act.
        let options = {
            var options = Stack.Options()
            options.excludedRoles = [.stock, .payment]
            return options
        }()
        try await Stack.run(options) { stack in
            var stockWorker = try stack.startRole(.stock, options: options)
            // The older order: reserved, then its payment request waits in the payment queue
            // (no payment worker), behind which it is only queued.
            let (_, waiting, _) = try await placeOne(stack)
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.orderStatus(waiting).status) == "AWAITING_PAYMENT" })
            #expect(await awaitQueued(stack, .payment, [waiting]))
            await stockWorker.stop()
            // The newer order: its order.placed waits in the stock queue, then is purged.
            let (_, lost, _) = try await placeOne(stack)
            #expect(await awaitQueued(stack, .stock, [lost]))

            var settings = Self.options.saga
            settings.passLimit = 1
            let reconciler = ownReconciler(stack, settings: settings)
            #expect(await awaitStalled(stack, [waiting, lost]))

            // Both queues have a backlog: the second page skips both orders' steps, nothing is re-driven.
            let bothQueued = try await reconciler.reconcileOnce()
            #expect(bothQueued.redrives.isEmpty)
            #expect(bothQueued.deferred == [stack.names.queue(.payment): 1])
            #expect(try await stack.count("SELECT count(*) FROM saga_redrives WHERE order_id = ANY($1)", [[waiting, lost]]) == 0)

            // The newer order's message is lost; the stock queue is clear.
            #expect(try await stack.purge(.stock) >= 1)
            let pass = try await reconciler.reconcileOnce()
            #expect(pass.deferred == [stack.names.queue(.payment): 1])
            #expect(pass.redrives.map(\.orderId) == [lost])
            #expect(pass.redrives.map(\.step) == ["reserve"])
            #expect(try await stack.count("SELECT count(*) FROM saga_redrives WHERE order_id = $1", [waiting]) == 0)

            // Both sagas end: the queued payment request is consumed, the re-driven placement
            // is published by the relays.
            stockWorker = try stack.startRole(.stock, options: options)
            let paymentWorker = try stack.startRole(.payment, options: options)
            #expect(try await stack.awaitTerminal(waiting, timeout: Self.deadline).status == "CONFIRMED")
            #expect(try await stack.awaitTerminal(lost, timeout: Self.deadline).status == "CONFIRMED")
            for order in [waiting, lost] {
                #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND kind = 'charge'", [order]) == 1)
            }
            await paymentWorker.stop()
            await stockWorker.stop()
        }
    }
}
