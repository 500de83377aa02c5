import AMQP
import Domain
import Foundation
import Messaging
import OperatorTools
import Postgres
import TestSupport
import Testing

/// Workers apply waiting messages in batches: one transaction, one inbox statement, one
/// outbox statement and one ack call for many messages. A batch must never cost a healthy
/// message its effect or apply one twice.
@Suite("Batched worker transactions", .timeLimit(.minutes(10)))
struct BatchTests {
    /// The largest number of a role's messages one transaction claimed: inbox rows of one
    /// transaction share `processed_at` (its start) and the process that handled them.
    static func largestBatch(_ stack: Stack, _ role: WorkerRole) async throws -> Int {
        try await stack.count(
            "SELECT coalesce(max(n), 0)::int8 FROM (SELECT count(*) AS n FROM inbox WHERE consumer = $1 GROUP BY processed_at, handled_by) AS batches",
            [role.rawValue])
    }

    /// How many events of `type` the `role`'s worker has applied (its inbox also holds the
    /// other events it consumes).
    static func applied(_ stack: Stack, _ role: WorkerRole, _ type: EventType) async throws -> Int {
        try await stack.count(
            "SELECT count(*) FROM inbox i JOIN outbox o ON o.id = i.message_id WHERE i.consumer = $1 AND o.event_type = $2",
            [role.rawValue, type.rawValue])
    }

    @Test("a poison message in a batch is dead-lettered alone; its 30 batch-mates are each applied once and their orders confirmed")
    func poisonInBatch() async throws {
        var options = Stack.Options()
        options.excludedRoles = [.stock]
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 1_000)
            // An order.placed whose envelope and type are fine but whose payload no handler can read.
            let poison = try EventEnvelope(typeName: EventType.orderPlaced.rawValue, orderId: UUID(), payload: ["lines": "not a list"])
            let orderIds = try await Self.poisonAmongBatchMates(stack, .stock, poison, productId: productId)
            // Each order's stock taken once, and nothing for the poison.
            #expect(try await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = ANY($1)", [orderIds]) == 30)
            #expect(try await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1", [poison.orderId!]) == 0)
            #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == 1_000 - 30 })
        }
    }

    @Test("a poison charge request in a batch is dead-lettered alone, before anything is charged; its 30 batch-mates are each charged once")
    func poisonInPaymentBatch() async throws {
        var options = Stack.Options()
        options.excludedRoles = [.payment]
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 1_000)
            // A payment.requested whose envelope and type are fine but whose payload no handler can read.
            let poison = try EventEnvelope(typeName: EventType.paymentRequested.rawValue, orderId: UUID(), payload: ["orderId": "not an id"])
            let orderIds = try await Self.poisonAmongBatchMates(stack, .payment, poison, productId: productId)
            // One charge per order at the provider, one payment each, none for the poison.
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded' AND order_id = ANY($1)", [orderIds])
                    == 30)
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE kind = 'charge' AND order_id = $1", [poison.orderId!]) == 0)
            #expect(try await stack.count("SELECT count(*) FROM payments WHERE order_id = ANY($1) AND status = 'SUCCEEDED'", [orderIds]) == 30)
            // Each order's payment.succeeded announced once.
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM outbox WHERE event_type = $2 AND order_id = ANY($1)", [orderIds, EventType.paymentSucceeded.rawValue]) == 30)
        }
    }

    /// Thirty orders whose messages wait for the stopped `role` worker, with `poison` among
    /// them (published once the first 15 wait); then one runner of the role, which takes the
    /// first message alone and the other 30 as a batch. Checks that the 30 orders are
    /// confirmed, that only the poison is dead-lettered (as permanent) and never recorded in
    /// the inbox, and that it really met its batch-mates (a batch failed and was redone).
    private static func poisonAmongBatchMates(_ stack: Stack, _ role: WorkerRole, _ poison: EventEnvelope, productId: UUID) async throws -> [UUID] {
        var orderIds: [UUID] = []
        for index in 0..<30 {
            if index == 15 {
                #expect(await TestEnvironment.eventually(timeout: .seconds(60)) { (try? await stack.queueDepth(role)) == 15 })
                let publisher = AMQPPublisher(configuration: stack.amqp)
                try await publisher.publish(
                    AMQPOutgoingMessage(
                        exchange: "", routingKey: stack.names.queue(role), body: try poison.encoded(),
                        properties: AMQPProperties(messageID: poison.id.uuidString.lowercased(), type: poison.type)))
                await publisher.close()
            }
            let (_, token) = try await stack.customer()
            try await stack.addToCart(token, productId, quantity: 1)
            orderIds.append(try await stack.placeOrder(token))
        }
        #expect(await TestEnvironment.eventually(timeout: .seconds(60)) { (try? await stack.queueDepth(role)) == 31 })

        let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 0, extraEnvironment: ["LOG_LEVEL": "debug", "WORKER_CONCURRENCY": "1"])
        defer { workers.stopAll() }
        try workers.start(role)
        #expect(
            await TestEnvironment.eventually(timeout: .seconds(90)) {
                (try? await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'CONFIRMED'", [orderIds])) == 30
            })
        #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.deadLetters(role)) == 1 })
        var filter = DeadLetterFilter()
        filter.queues = [role.rawValue]
        let letters = try await DeadLetters(amqp: stack.amqp, names: stack.names).list(filter)
        #expect(letters.map(\.messageId) == [poison.id.uuidString.lowercased()], "only the poison is dead-lettered")
        #expect(letters.first?.errorClass == "permanent")
        let redone = workers.logLines(role).filter { $0.contains("a batch failed; redoing its messages one at a time") }
        #expect(!redone.isEmpty, "no batch held the poison:\n\(workers.log(role).suffix(3000))")
        #expect(try await stack.count("SELECT count(*) FROM inbox WHERE consumer = $1 AND message_id = $2", [role.rawValue, poison.id]) == 0)
        return orderIds
    }

    @Test("the notification worker batches the events merchants alone hear of, and mails each customer in a transaction of its own, once")
    func notificationBatchesOnlyWhatSendsNoMail() async throws {
        // A real relay: the customer's notification calls out, so it may not share a transaction.
        let sink = try SMTPSink()
        defer { sink.close() }
        var options = Stack.Options()
        options.excludedRoles = [.notification]
        try await Stack.run(options) { stack in
            let orderIds = try await Self.notificationBacklog(stack)
            let workers = try WorkerProcesses(
                stack: stack, providerLatencyMS: 0,
                extraEnvironment: ["WORKER_CONCURRENCY": "1", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": String(sink.port)])
            try workers.start(.notification)
            try await Self.expectNotifiedOnce(stack, orderIds)
            #expect(try await Self.largestBatch(stack, .notification) > 1, "the merchant-only events shared no transaction")
            #expect(try await Self.largestTransaction(stack, handling: "order.confirmed") == 1, "a customer's mail shared its transaction with other messages")
            #expect(await TestEnvironment.eventually(timeout: .seconds(10)) { sink.messages.count == 20 }, "mails: \(sink.messages.count)")
            workers.stopAll()
            #expect(sink.messages.count == 20, "a mail was sent twice")
        }
    }

    @Test("through a channel that only records, the notification worker batches the customers' notifications too, each recorded once")
    func recordedNotificationsShareTransactions() async throws {
        var options = Stack.Options()
        options.excludedRoles = [.notification]
        try await Stack.run(options) { stack in
            let orderIds = try await Self.notificationBacklog(stack)
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 0, extraEnvironment: ["WORKER_CONCURRENCY": "1"])
            try workers.start(.notification)
            try await Self.expectNotifiedOnce(stack, orderIds)
            #expect(try await Self.largestTransaction(stack, handling: "order.confirmed") > 1, "the recorded notifications shared no transaction")
            workers.stopAll()
        }
    }

    /// Below saturation messages arrive one at a time, to idle runners. With
    /// `WORKER_BATCH_WAIT_MS`, those nobody waits on are held for company: the notification
    /// worker's events share a transaction, and the stock worker's commit of order 1's
    /// reservation waits until order 2's placement, which is handed out at once and takes it
    /// along. With the wait off each message is handled the moment it arrives, alone. Order 2
    /// is placed once order 1 is confirmed, so no backlog forms either way.
    @Test(
        "below saturation, messages nobody waits on are held for company (WORKER_BATCH_WAIT_MS) and a placement takes them along; each effect applied once; with the wait off every message goes alone",
        arguments: [0, 1_000])
    func messagesNobodyWaitsOnWaitForCompany(waitMS: Int) async throws {
        var options = Stack.Options()
        options.excludedRoles = [.notification, .stock]
        try await Stack.run(options) { stack in
            let workers = try WorkerProcesses(
                stack: stack, providerLatencyMS: 0, extraEnvironment: ["WORKER_BATCH_WAIT_MS": String(waitMS)])
            defer { workers.stopAll() }
            try workers.start(.stock)
            try workers.start(.notification)
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 100)
            var tokens: [String] = []
            for _ in 0..<2 {
                let (_, token) = try await stack.customer()
                try await stack.addToCart(token, productId, quantity: 1)
                tokens.append(token)
            }
            var orderIds: [UUID] = []
            for token in tokens {
                let orderId = try await stack.placeOrder(token)
                orderIds.append(orderId)
                #expect(
                    await TestEnvironment.eventually(timeout: .seconds(30)) {
                        (try? await stack.orderStatus(orderId).status) == "CONFIRMED"
                    }, "order \(orderId) was not confirmed")
                // Its order.confirmed is with the broker (marked after the confirm), so order 2's
                // placement reaches the stock worker after it.
                #expect(
                    await TestEnvironment.eventually(timeout: .seconds(30)) {
                        (try? await stack.count(
                            "SELECT count(*) FROM outbox WHERE order_id = $1 AND event_type = 'order.confirmed' AND published_at IS NOT NULL",
                            [orderId])) == 1
                    })
            }
            // Every effect once: both reservations committed, three notification events per
            // order recorded, each confirmation noted once, nothing dead-lettered.
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(30)) {
                    (try? await stack.count(
                        "SELECT count(*) FROM stock_reservations WHERE order_id = ANY($1) AND status = 'COMMITTED'", [orderIds])) == 2
                })
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(30)) {
                    (try? await stack.count("SELECT count(*) FROM inbox WHERE consumer = 'notification'")) == 6
                })
            #expect(try await stack.count("SELECT count(*) FROM inbox WHERE consumer = 'stock'") == 4)
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM notifications WHERE order_id = ANY($1) AND template = 'order_confirmed'", [orderIds]) == 2)
            #expect(try await stack.deadLetters(.notification) == 0)
            #expect(try await stack.deadLetters(.stock) == 0)
            let notificationBatch = try await Self.largestBatch(stack, .notification)
            let placementWithCommit = try await stack.count(
                """
                SELECT count(*) FROM (
                  SELECT 1 FROM inbox i JOIN outbox o ON o.id = i.message_id WHERE i.consumer = 'stock'
                  GROUP BY i.processed_at, i.handled_by
                  HAVING bool_or(o.event_type = 'order.placed') AND bool_or(o.event_type = 'order.confirmed')) AS shared
                """)
            if waitMS == 0 {
                #expect(notificationBatch == 1, "with the wait off, \(notificationBatch) notification messages shared a transaction")
                #expect(try await Self.largestBatch(stack, .stock) == 1, "with the wait off, stock messages shared a transaction")
            } else {
                #expect(notificationBatch > 1, "with a wait of \(waitMS) ms, no notification messages shared a transaction")
                #expect(placementWithCommit == 1, "order 2's placement did not take order 1's waiting commit along")
            }
        }
    }

    /// Twenty confirmed orders whose notification events wait for the stopped notification
    /// worker: per order, order.placed and payment.succeeded (merchants only) and
    /// order.confirmed (the customer's notification).
    private static func notificationBacklog(_ stack: Stack) async throws -> [UUID] {
        let admin = try await stack.admin()
        let productId = try await stack.product(admin, stock: 1_000)
        var orderIds: [UUID] = []
        for _ in 0..<20 {
            let (_, token) = try await stack.customer()
            try await stack.addToCart(token, productId, quantity: 1)
            orderIds.append(try await stack.placeOrder(token))
        }
        #expect(
            await TestEnvironment.eventually(timeout: .seconds(60)) {
                (try? await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'CONFIRMED'", [orderIds])) == 20
            })
        #expect(await TestEnvironment.eventually(timeout: .seconds(60)) { (try? await stack.queueDepth(.notification)) == 60 })
        return orderIds
    }

    /// Waits until the backlog is handled, then checks each order's confirmation was recorded
    /// once and nothing was dead-lettered.
    private static func expectNotifiedOnce(_ stack: Stack, _ orderIds: [UUID]) async throws {
        #expect(
            await TestEnvironment.eventually(timeout: .seconds(60)) {
                (try? await stack.count("SELECT count(*) FROM inbox WHERE consumer = 'notification'")) == 60
            })
        #expect(
            await TestEnvironment.eventually(timeout: .seconds(30)) {
                (try? await stack.count(
                    "SELECT count(*) FROM notifications WHERE order_id = ANY($1) AND template = 'order_confirmed'", [orderIds])) == 20
            })
        #expect(
            try await stack.count(
                "SELECT count(*) FROM (SELECT order_id FROM notifications WHERE order_id = ANY($1) GROUP BY order_id, template HAVING count(*) > 1) AS twice",
                [orderIds]) == 0)
        #expect(try await stack.deadLetters(.notification) == 0)
    }

    /// The most messages one notification transaction handled among those that handled an
    /// event of `type`.
    private static func largestTransaction(_ stack: Stack, handling type: String) async throws -> Int {
        try await stack.count(
            """
            SELECT coalesce(max(n), 0)::int8 FROM (
              SELECT count(*) AS n FROM inbox i JOIN outbox o ON o.id = i.message_id WHERE i.consumer = 'notification'
              GROUP BY i.processed_at, i.handled_by HAVING bool_or(o.event_type = $1)) AS handled
            """, [type])
    }

    /// A backlog of 200 orders' `type` events for a stopped `role` worker, which is killed with
    /// SIGKILL once it has committed a few batches and then restarted: every order ends
    /// terminal with each effect (reservation, charge, payment, transition) applied once.
    static func crashMidBatch(_ role: WorkerRole, applying type: EventType) async throws {
        try await Stack.apiOnly { stack in
            let initialStock = ScalingTests.initialStock
            let others = WorkerRole.allCases.filter { $0 != role }.map { ($0, 1) }
            let (productId, workers) = try await ScalingTests.productAndReplicas(stack, providerLatencyMS: 0, others)
            let orderIds = try await ScalingTests.placeOrders(stack, productId: productId, customers: 20, perCustomer: 10)
            #expect(orderIds.count == 200)
            #expect(await TestEnvironment.eventually(timeout: .seconds(60)) { (try? await stack.queueDepth(role)) == 200 })

            // Killed once it has committed a few batches, while the backlog is still large.
            let crashing = try WorkerProcesses(stack: stack, providerLatencyMS: 0, extraEnvironment: ["WORKER_CONCURRENCY": "1"])
            try crashing.start(role)
            // Polled tightly (not `eventually`'s 50 ms): the whole backlog takes well under a second.
            let deadline = ContinuousClock.now + .seconds(60)
            while try await Self.applied(stack, role, type) < 40, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(2))
            }
            // Killed first and counted after: a count in between lets a fast worker finish.
            crashing.kill9(role)
            let handledBeforeCrash = try await Self.applied(stack, role, type)
            try #require(handledBeforeCrash >= 40, "the \(role.rawValue) worker applied only \(handledBeforeCrash) of its backlog within 60 s")
            #expect(handledBeforeCrash < 200, "the backlog was finished before the kill; the test proves nothing")
            #expect(try await Self.largestBatch(stack, role) > 1, "the \(role.rawValue) worker applied no batch before the kill")

            try crashing.start(role)
            try await ScalingTests.expectEachAppliedOnce(stack, orderIds, productId: productId, initialStock: initialStock)
            #expect(try await Self.applied(stack, role, type) == 200)
            #expect(try await stack.deadLetters(role) == 0)
            crashing.stopAll()
            workers.stopAll()
        }
    }
}

extension BatchTests {
    /// The crash drills, one after the other: each polls tightly to kill its worker mid-backlog,
    /// and two at once in this process starve each other's polls, so a worker could finish its
    /// whole backlog before the kill (the drill then proves nothing).
    @Suite("Batched worker transactions: kill -9 mid-batch", .serialized)
    struct CrashMidBatch {
        @Test("kill -9 of a stock worker applying batches of a 200-order backlog: after a restart every order is terminal and every effect applied once")
        func crashMidBatch() async throws {
            try await BatchTests.crashMidBatch(.stock, applying: .orderPlaced)
        }

        @Test("kill -9 of a payment worker charging batches of a 200-order backlog: after a restart every order is terminal and charged once")
        func paymentCrashMidBatch() async throws {
            try await BatchTests.crashMidBatch(.payment, applying: .paymentRequested)
        }
    }
}
