import AMQP
import Domain
import Foundation
import HTTPTypes
import Messaging
import OperatorTools
import Postgres
import Store
import TestSupport
import Testing
import Workers

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Failure handling: retries, dead letters, the dlq CLI, drains and the sweeper", .timeLimit(.minutes(10)))
struct FailureTests {
    /// Puts a synthetic dead letter straight into a role's DLQ.
    private func deadLetter(
        _ stack: Stack, role: WorkerRole = .payment, id: String = UUID().uuidString.lowercased(), type: String = "payment.requested",
        orderId: UUID = UUID(), error: String = "payment provider unavailable (outage)", replays: Int = 0
    ) async throws -> String {
        let publisher = AMQPPublisher(configuration: stack.amqp)
        var headers: AMQPTable = [
            DeadLetterHeader.error: .string(error), DeadLetterHeader.errorClass: "transient", DeadLetterHeader.attempts: 4,
            DeadLetterHeader.consumer: .string(role.rawValue), DeadLetterHeader.originalExchange: .string(stack.names.eventsExchange),
            DeadLetterHeader.originalRoutingKey: .string(type), DeadLetterHeader.lastFailureAt: .string(DeadLetterHeader.timestamp()),
            "order_id": .string(orderId.uuidString.lowercased()),
        ]
        if replays > 0 { headers[DeadLetterHeader.replayCount] = .int(Int64(replays)) }
        try await publisher.publish(
            AMQPOutgoingMessage(
                exchange: "", routingKey: stack.names.deadLetterQueue(role), body: Array("{\"order_id\":\"\(orderId)\"}".utf8),
                properties: AMQPProperties(messageID: id, contentType: "application/json", type: type, headers: headers)))
        await publisher.close()
        return id
    }

    private func declareTopology(_ stack: Stack) async throws -> AMQPConnection {
        let admin = try await AMQPConnection.connect(configuration: stack.amqp)
        try await admin.declare(stack.names.topology(policy: Stack.Options().policy))
        return admin
    }

    private func tools(_ stack: Stack) -> DeadLetters { DeadLetters(amqp: stack.amqp, names: stack.names) }

    @Test("invalid JSON and an unknown type go straight to the DLQ with their error headers, no retries")
    func poisonMessages() async throws {
        try await Stack.run { stack in
            let admin = try await AMQPConnection.connect(configuration: stack.amqp)
            #expect(await TestEnvironment.eventually { (try? await admin.queueStatus(stack.names.queue(.stock)).consumers) ?? 0 >= 1 })
            await admin.close()
            let publisher = AMQPPublisher(configuration: stack.amqp)
            try await publisher.publish(
                AMQPOutgoingMessage(
                    exchange: "", routingKey: stack.names.queue(.stock), body: Array("{not json".utf8),
                    properties: AMQPProperties(messageID: "bad-json", type: "order.placed")))
            let unknown = try EventEnvelope(typeName: "order.teleported", orderId: UUID(), payload: ["x": 1])
            try await publisher.publish(
                AMQPOutgoingMessage(
                    exchange: "", routingKey: stack.names.queue(.stock), body: try unknown.encoded(),
                    properties: AMQPProperties(messageID: unknown.id.uuidString.lowercased(), type: unknown.type)))
            await publisher.close()
            let dlq = tools(stack)
            var filter = DeadLetterFilter()
            filter.queues = ["stock"]
            #expect(await TestEnvironment.eventually { (try? await dlq.list(filter).count) == 2 })
            let letters = try await dlq.list(filter)
            let bad = try #require(letters.first { $0.messageId == "bad-json" })
            #expect(bad.error.contains("undecodable"))
            #expect(bad.errorClass == "permanent")
            #expect(bad.attempts == 1)
            #expect(bad.consumer == "stock")
            #expect(bad.originalRoutingKey == stack.names.queue(.stock) || bad.originalRoutingKey == "order.placed")
            #expect(bad.firstFailureAt != nil)
            let strange = try #require(letters.first { $0.type == "order.teleported" })
            #expect(strange.error.contains("unknown event type"))
            #expect(strange.attempts == 1)
        }
    }

    @Test("a transient payment failure is retried with growing delays and succeeds once the cause is gone; kept, it is dead-lettered")
    func transientPaymentFailure() async throws {
        // The gaps below are one message's retries: no relay copy may join them.
        var options = Stack.Options()
        options.relayGrace = .seconds(120)
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10)
            try await FakeProviderLedger(pool: stack.db).setOutage(true)

            let (_, token) = try await stack.customer()
            try await stack.addToCart(token, productId, quantity: 1)
            let recovered = try await stack.placeOrder(token)
            let key = PaymentKey.of(recovered)
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(60)) {
                    (try? await stack.count("SELECT count(*) FROM fake_provider_refused_calls WHERE idempotency_key = $1", [key])) ?? 0 >= 3
                })
            try await FakeProviderLedger(pool: stack.db).setOutage(false)
            #expect(try await stack.awaitTerminal(recovered).status == "CONFIRMED")
            let times = try await stack.db.query(
                "SELECT extract(epoch FROM refused_at)::float8 AS t FROM fake_provider_refused_calls WHERE idempotency_key = $1 ORDER BY id", [key]
            )
            .map { try $0.decode(Double.self, "t") }
            // The configured steps are 300 ms then 1200 ms. A slow machine only stretches a
            // wait, so each gap is checked against its step as a lower bound; which step each
            // attempt takes is shown exactly by MessagingTests.FailureRouterTests.
            #expect(times.count >= 3)
            if times.count >= 3 {
                // The gaps assume one copy of the request in circulation. A second copy (the
                // relay republishing an event whose after-commit publish took longer than its
                // grace on a loaded machine) would interleave its own attempts: say so.
                let copies = try await stack.db.query(
                    "SELECT attempts, extract(epoch FROM published_at - created_at)::float8 AS delay FROM outbox WHERE order_id = $1 AND event_type = 'payment.requested'",
                    [recovered]
                ).map { "attempts \(try $0.decode(Int.self, "attempts")), published after \(try $0.decode(Double?.self, "delay") ?? -1) s" }
                #expect(times[1] - times[0] >= 0.25, "calls at \(times); the request's outbox row: \(copies)")
                #expect(times[2] - times[1] >= 1.1, "calls at \(times); the request's outbox row: \(copies)")
            }
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND outcome = 'succeeded'", [recovered]) == 1)

            // With the cause kept, the message is dead-lettered after the attempt limit.
            try await FakeProviderLedger(pool: stack.db).setOutage(true)
            try await stack.addToCart(token, productId, quantity: 1)
            let stuck = try await stack.placeOrder(token)
            var filter = DeadLetterFilter()
            filter.orderId = stuck.uuidString
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await tools(stack).list(filter).count) == 1 })
            let letter = try #require(try await tools(stack).list(filter).first)
            #expect(letter.attempts == Stack.Options().policy.maxAttempts)
            #expect(letter.errorClass == "transient")
            #expect(letter.error.contains("unavailable"))
            #expect(letter.queue == stack.names.deadLetterQueue(.payment))
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_refused_calls WHERE idempotency_key = $1", [PaymentKey.of(stuck)]) == 4)
            #expect(try await stack.orderStatus(stuck).status == "AWAITING_PAYMENT")

            // After the fix, replaying it by order completes the order, charged once.
            try await FakeProviderLedger(pool: stack.db).setOutage(false)
            let replay = try CLI(stack: stack).run("dlq", "replay", "--order", stuck.uuidString)
            #expect(replay.status == 0, "\(replay.stderr)")
            #expect(replay.stdout.contains("replayed 1 message(s)"))
            #expect(try await stack.awaitTerminal(stuck).status == "CONFIRMED")
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND kind = 'charge'", [stuck]) == 1)
            #expect(try await tools(stack).list(filter).isEmpty)
        }
    }

    @Test("a message that kills the worker each time ends in the DLQ after the delivery limit")
    func crashLoop() async throws {
        var options = Stack.Options()
        options.excludedRoles = [.payment]
        try await Stack.run(options) { stack in
            let (_, _, (_, token)) = try await stack.filledCart(stock: 10)
            let payment = try WorkerProcesses(stack: stack, providerLatencyMS: 0)
            try payment.start(.payment)
            let orderId = try await stack.placeOrder(token, paymentMethod: "tok_crash")
            var filter = DeadLetterFilter()
            filter.orderId = orderId.uuidString
            let queue = stack.names.queue(.payment)
            // Delivery is at least once: on a loaded machine the outbox relay can publish the
            // event a second time (its writer's mark came after the relay's grace), and each
            // copy is a poison message of its own. So the loop restarts the worker until every
            // copy is out of the queue (ready and unacknowledged both counted), not only until
            // the first dead letter appears.
            var crashes = 0
            let deadline = ContinuousClock.now + .seconds(150)
            while ContinuousClock.now < deadline {
                if !payment.isRunning(.payment) {
                    crashes += 1
                    try payment.start(.payment)
                }
                if (try await tools(stack).list(filter).count) > 0, try await messagesHeld(stack, queue: queue) == 0 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            let letters = try await tools(stack).list(filter)
            try #require(!letters.isEmpty, "no dead letter after \(crashes) crashes; payment worker log:\n\(payment.log(.payment).suffix(2000))")
            #expect(try await messagesHeld(stack, queue: queue) == 0)
            for letter in letters {
                #expect(letter.type == "payment.requested")
                #expect(letter.error.contains("delivery_limit"))
            }
            // Each copy took the worker down about `deliveryLimit` times (the broker counts
            // returns, so the last delivery of a copy may or may not be one more crash).
            let limit = Stack.Options().policy.deliveryLimit
            #expect(crashes >= limit, "\(crashes) crashes for \(letters.count) copies")
            #expect(crashes <= letters.count * (limit + 2), "\(crashes) crashes for \(letters.count) copies")
            // With the poison out of its queue, a restarted worker subscribes and stays up.
            // Waited for, not slept on: on a loaded machine a restart takes seconds.
            if !payment.isRunning(.payment) { try payment.start(.payment) }
            try await payment.awaitReady([(.payment, 1)])
            #expect(payment.isRunning(.payment), "payment worker log:\n\(payment.log(.payment).suffix(2000))")
            payment.stopAll()
        }
    }

    /// Messages in `queue` that are ready or delivered and not yet acknowledged (the AMQP
    /// passive declare counts only the ready ones, and a poison message spends most of its
    /// life delivered to a worker that is about to die).
    private func messagesHeld(_ stack: Stack, queue: String) async throws -> Int {
        let (status, output) = try await TestEnvironment.run(
            TestEnvironment.repositoryRoot.appendingPathComponent("scripts/rabbitmqctl").path,
            ["-q", "list_queues", "-p", stack.amqp.virtualHost, "name", "messages", "--no-table-headers"])
        guard status == 0 else { throw TestFailure("rabbitmqctl list_queues failed: \(output)") }
        for line in output.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count == 2, fields[0] == queue, let count = Int(fields[1]) { return count }
        }
        throw TestFailure("queue \(queue) not listed by rabbitmqctl:\n\(output)")
    }

    @Test("dlq list twice shows the same rows and leaves depth and order unchanged; --json carries the same data")
    func listDoesNotConsume() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await declareTopology(stack)
            var ids: [String] = []
            for index in 0..<5 { ids.append(try await deadLetter(stack, id: "dead-\(index)", error: "boom \(index)")) }
            let cli = CLI(stack: stack)
            let first = try cli.run("dlq", "list")
            let second = try cli.run("dlq", "list")
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("5 dead letter(s)"))
            // Ages may tick between the runs; every other column is identical, in order.
            let strip = { (text: String) in text.split(separator: "\n").map { String($0.prefix(28 + 38 + 20 + 38 + 9)) } }
            #expect(strip(first.stdout) == strip(second.stdout))
            #expect(try await admin.queueStatus(stack.names.deadLetterQueue(.payment)).messages == 5)
            let json = try cli.run("dlq", "list", "--json")
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
            #expect(rows.compactMap { $0["message_id"] as? String } == ids)
            #expect(rows.compactMap { $0["error"] as? String } == (0..<5).map { "boom \($0)" })
            for id in ids { #expect(first.stdout.contains(id)) }
            // Order unchanged: the head is still the first one.
            #expect(try await tools(stack).list(DeadLetterFilter()).map(\.messageId) == ids)
            let show = try cli.run("dlq", "show", "dead-3")
            #expect(show.stdout.contains("boom 3"))
            #expect(show.stdout.contains("x-attempts: 4"))
            let missing = try cli.run("dlq", "show", "no-such-id")
            #expect(missing.status != 0)
            #expect(missing.stderr.contains("no dead letter with message id no-such-id"))
            let stats = try cli.run("dlq", "stats")
            #expect(stats.stdout.contains(stack.names.deadLetterQueue(.payment)))
            await admin.close()
        }
    }

    @Test("dlq replay by id, type, order, error pattern and --all; --dry-run; --rate; the replay guard")
    func replaySelections() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await declareTopology(stack)
            let cli = CLI(stack: stack)
            let work = stack.names.queue(.payment)
            let dlq = stack.names.deadLetterQueue(.payment)
            func depth(_ queue: String) async throws -> Int { try await admin.queueStatus(queue).messages }

            let byId = try await deadLetter(stack)
            let byType = try await deadLetter(stack, type: "order.cancelled")
            let order = UUID()
            _ = try await deadLetter(stack, orderId: order)
            _ = try await deadLetter(stack, error: "card network timeout")
            _ = try await deadLetter(stack)
            #expect(try await depth(dlq) == 5)

            let dry = try cli.run("dlq", "replay", "--all", "--dry-run")
            #expect(dry.stdout.contains("would replay 5 message(s)"))
            #expect(try await depth(dlq) == 5)
            #expect(try await depth(work) == 0)

            #expect(try cli.run("dlq", "replay", "--id", byId).stdout.contains("replayed 1 message(s)"))
            #expect(try cli.run("dlq", "replay", "--type", "order.cancelled").stdout.contains("replayed 1 message(s)"))
            #expect(try cli.run("dlq", "replay", "--order", order.uuidString).stdout.contains("replayed 1 message(s)"))
            #expect(try cli.run("dlq", "replay", "--error", "network t.meout").stdout.contains("replayed 1 message(s)"))
            #expect(try cli.run("dlq", "replay", "--all").stdout.contains("replayed 1 message(s)"))
            #expect(try await depth(dlq) == 0)
            #expect(await TestEnvironment.eventually { (try? await depth(work)) == 5 })

            // The copy in the work queue keeps its id, loses its failure headers, gains lineage.
            let copy = try #require(try await admin.get(queue: work))
            #expect([byId, byType].contains(copy.properties.messageID ?? ""))
            #expect(copy.properties.headers[DeadLetterHeader.replayCount]?.intValue == 1)
            #expect(copy.properties.headers[DeadLetterHeader.replayedAt] != nil)
            #expect(copy.properties.headers[DeadLetterHeader.attempts] == nil)
            try await admin.requeueAll()
            try await admin.purgeQueue(work)

            // The guard: three replays already → refused without --force.
            let tired = try await deadLetter(stack, replays: 3)
            let refused = try cli.run("dlq", "replay", "--id", tired)
            #expect(refused.status == 3)
            #expect(refused.stdout.contains("refused \(tired)"))
            #expect(try await depth(dlq) == 1)
            let forced = try cli.run("dlq", "replay", "--id", tired, "--force")
            #expect(forced.status == 0)
            #expect(try await depth(dlq) == 0)
            let unknown = try cli.run("dlq", "replay", "--id", "no-such-id")
            #expect(unknown.status != 0)
            #expect(try cli.run("dlq", "replay").status == 64)  // nothing selected

            // --rate 5 paces 20 messages: the CLI's own summary says how long it took.
            try await admin.purgeQueue(work)
            for _ in 0..<20 { _ = try await deadLetter(stack) }
            let paced = try cli.run("dlq", "replay", "--all", "--rate", "5")
            #expect(paced.stdout.contains("replayed 20 message(s)"))
            let summary = try #require(paced.stdout.split(separator: "\n").last { $0.hasPrefix("dlq replay:") })
            let seconds = Double(summary.split(separator: " ")[6]) ?? 0
            #expect(seconds >= 3.8)  // 19 gaps of 200 ms at least: pacing, not speed
            print("rate-limited replay summary: \(summary)")
            await admin.close()
        }
    }

    @Test("kill -9 of the CLI mid-replay loses no message")
    func replayCrashLosesNothing() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await declareTopology(stack)
            var ids = Set<String>()
            for _ in 0..<20 { ids.insert(try await deadLetter(stack)) }
            let (process, _, _) = try CLI(stack: stack).process(["dlq", "replay", "--all", "--rate", "2"])
            // Killed once it is under way (a few messages replayed at 2 per second: 10 s for all).
            #expect(await TestEnvironment.eventually { (try? await admin.queueStatus(stack.names.queue(.payment)).messages) ?? 0 >= 3 })
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try await Task.sleep(for: .milliseconds(500))  // the broker notices the dead connection
            var seen: [String: [String]] = [:]
            for queue in [stack.names.deadLetterQueue(.payment), stack.names.queue(.payment)] {
                let browser = try await AMQPConnection.connect(configuration: stack.amqp)
                while let delivery = try await browser.get(queue: queue) { seen[queue, default: []].append(delivery.properties.messageID ?? "") }
                await browser.close()
            }
            let stillDead = seen[stack.names.deadLetterQueue(.payment)] ?? []
            let replayed = seen[stack.names.queue(.payment)] ?? []
            #expect(Set(stillDead + replayed) == ids)  // every message is somewhere: none lost
            #expect(!replayed.isEmpty && !stillDead.isEmpty)  // it really was killed mid-replay
            await admin.close()
        }
    }

    @Test("dlq purge refuses without a filter or --yes and prints what it removed")
    func purge() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await declareTopology(stack)
            let cli = CLI(stack: stack)
            let keep = try await deadLetter(stack, error: "keep me")
            let drop = try await deadLetter(stack, error: "drop me")
            let noFilter = try cli.run("dlq", "purge", "--yes")
            #expect(noFilter.status == 64)
            #expect(noFilter.stderr.contains("needs a filter"))
            let noYes = try cli.run("dlq", "purge", "--error", "drop")
            #expect(noYes.status == 64)
            #expect(noYes.stderr.contains("--yes"))
            #expect(try await admin.queueStatus(stack.names.deadLetterQueue(.payment)).messages == 2)
            let purged = try cli.run("dlq", "purge", "--error", "drop", "--yes")
            #expect(purged.status == 0)
            #expect(purged.stdout.contains("removed \(drop)"))
            #expect(purged.stdout.contains("removed 1 message(s)"))
            #expect(try await tools(stack).list(DeadLetterFilter()).map(\.messageId) == [keep])
            await admin.close()
        }
    }

    @Test("SIGTERM to each worker mid-stream: exit 0 within the drain timeout, nothing lost")
    func sigtermDrains() async throws {
        try await Stack.apiOnly { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 1_000)
            var tokens: [String] = []
            for index in 0..<60 {
                let (_, token) = try await stack.customer("drain\(index)-\(UUID().uuidString.prefix(6))")
                try await stack.addToCart(token, productId, quantity: 1)
                tokens.append(token)
            }
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 30)
            for role in WorkerRole.allCases { try workers.start(role) }
            // Signalled before its signal handlers are installed (a slow start on a loaded
            // machine), a worker dies of SIGTERM (status 15) instead of draining: wait until
            // each is consuming.
            try await workers.awaitReady(WorkerRole.allCases.map { ($0, 1) })
            let placing = Task {
                try await withThrowingTaskGroup(of: UUID.self) { group in
                    for (index, token) in tokens.enumerated() {
                        if index % 6 == 0 { try await Task.sleep(for: .milliseconds(250)) }
                        group.addTask { try await stack.placeOrder(token) }
                    }
                    return try await group.reduce(into: [UUID]()) { $0.append($1) }
                }
            }
            var exits: [(WorkerRole, Int32, Duration)] = []
            for role in [WorkerRole.payment, .stock, .order, .notification] {
                try await Task.sleep(for: .milliseconds(400))
                let (status, took) = workers.terminate(role)
                exits.append((role, status, took))
                try workers.start(role)
            }
            let orderIds = try await placing.value
            for (role, status, took) in exits {
                #expect(status == 0, "\(role) exited \(status)")
                #expect(took < .seconds(3 + 5), "\(role) took \(took) to exit (drain timeout 3 s)")
            }
            for orderId in orderIds {
                #expect(try await stack.awaitTerminal(orderId, timeout: .seconds(60)).status == "CONFIRMED")
            }
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded'") == 60)
            #expect(try await stack.stock(productId) == 1_000 - 60)
            #expect(await TestEnvironment.eventually { (try? await stack.count("SELECT count(*) FROM notifications")) == 60 })
            workers.stopAll()
        }
    }

    @Test("an order left AWAITING_PAYMENT past the timeout is CANCELLED (expired) and its stock released once")
    func paymentTimeout() async throws {
        var options = Stack.Options()
        options.excludedRoles = [.payment]  // nobody charges: the order waits
        options.paymentTimeout = .seconds(1)
        try await Stack.run(options) { stack in
            let (_, productId, _, orderId) = try await stack.purchase(stock: 5, quantity: 2)
            #expect(await TestEnvironment.eventually { (try? await stack.orderStatus(orderId).status) == "AWAITING_PAYMENT" })
            #expect(try await stack.stock(productId) == 3)
            let final = try await stack.awaitTerminal(orderId)
            #expect(final.status == "CANCELLED")
            #expect(final.reason == "expired")
            #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == 5 })
            // Once: a duplicate cancellation and further sweeps change nothing.
            let cancelled = try await stack.db.query(
                "SELECT payload::text AS body FROM outbox WHERE order_id = $1 AND event_type = 'order.cancelled'", [orderId])
            #expect(cancelled.count == 1)
            let body = Array(try cancelled[0].decode(String.self, "body").utf8)
            let again = try EventEnvelope(
                type: EventType.orderCancelled, orderId: orderId, payload: try EventEnvelope.decode(body).payload(as: OrderOutcome.self))
            let publisher = AMQPPublisher(configuration: stack.amqp)
            try await publisher.publish(OutboxStore.message(for: again, body: try again.encoded(), exchange: stack.names.eventsExchange))
            await publisher.close()
            let consumers = WorkerRole.allCases.filter { $0 != .payment && $0.consumes.contains(.orderCancelled) }
            #expect(await stack.awaitConsumed(again.id, by: consumers), "the duplicate cancellation was never consumed")
            #expect(try await stack.stock(productId) == 5)
            #expect(try await stack.count("SELECT count(*) FROM order_status_history WHERE order_id = $1 AND to_status = 'CANCELLED'", [orderId]) == 1)
        }
    }
}

/// The fake provider's idempotency key for an order's payment.
enum PaymentKey {
    static func of(_ orderId: UUID) -> String { PaymentIds.paymentId(for: orderId).uuidString.lowercased() }
}
