import AMQP
import Domain
import Foundation
import Messaging
import TestSupport
import Testing

/// One sample of a Prometheus text exposition: the value of `name` whose labels include
/// `labels`, summed over any other labels; 0 when absent (a counter not yet moved).
func prometheusValue(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double {
    var total = 0.0
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: " ")
        guard parts.count >= 2, let value = Double(parts[parts.count - 1]) else { continue }
        let series = String(parts[0])
        let metric = series.prefix { $0 != "{" }
        guard metric == name else { continue }
        var found: [String: String] = [:]
        if let open = series.firstIndex(of: "{") {
            for pair in series[series.index(after: open)..<series.index(before: series.endIndex)].split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { found[String(kv[0])] = String(kv[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            }
        }
        if labels.allSatisfy({ found[$0.key] == $0.value }) { total += value }
    }
    return total
}

@Suite("Prometheus metrics of the API and the workers", .timeLimit(.minutes(10)))
struct MetricsTests {
    @Test("after one order, /metrics of the API and of each worker show the counters moved by exactly that order")
    func countersMove() async throws {
        try await Stack.apiOnly { stack in
            let api = try await APIProcess(stack: stack, extraEnvironment: ["LOG_LEVEL": "warning"])
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 0)
            for role in WorkerRole.allCases { try workers.start(role) }
            try await workers.awaitReady(WorkerRole.allCases.map { ($0, 1) })
            func scrape(_ role: WorkerRole?) async throws -> String {
                let url = role.map { "http://127.0.0.1:\(workers.healthPort($0)!)/metrics" } ?? "http://127.0.0.1:\(api.metricsPort)/metrics"
                let (status, output) = try await TestEnvironment.run("/usr/bin/curl", ["-fsS", url])
                guard status == 0 else { throw TestFailure("scraping \(url) failed: \(output)") }
                return output
            }
            let (_, _, (_, token)) = try await stack.filledCart(stock: 10, quantity: 2)
            var before: [String: String] = ["api": try await scrape(nil)]
            for role in WorkerRole.allCases { before[role.rawValue] = try await scrape(role) }

            let placed = try await api.request(
                "POST", "/api/v1/orders", json: Stack.orderBody(), headers: ["Authorization": "Bearer \(token)", "Idempotency-Key": UUID().uuidString])
            #expect(placed.status == 201)
            let orderId = try #require(uuid(jsonLogLine(placed.body)?["id"]))
            #expect(try await stack.awaitTerminal(orderId, timeout: .seconds(60)).status == "CONFIRMED")
            // The notification is the last step.
            #expect(await TestEnvironment.eventually { (try? await stack.count("SELECT count(*) FROM notifications WHERE order_id = $1", [orderId])) == 1 })

            func delta(_ source: String, _ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double {
                prometheusValue(text, name, labels) - prometheusValue(before[source] ?? "", name, labels)
            }
            /// The order's five events, and how many of them each role's queue is bound to.
            let sagaTypes: [EventType] = [.orderPlaced, .stockReserved, .paymentRequested, .paymentSucceeded, .orderConfirmed]
            func bound(_ role: WorkerRole) -> Double { Double(sagaTypes.filter(role.consumes.contains).count) }
            // Acks are counted after the commit that the notification row shows: wait for them.
            let allAcked = await TestEnvironment.eventually {
                for role in WorkerRole.allCases {
                    guard let text = try? await scrape(role), delta(role.rawValue, text, "messages_acked_total") == bound(role) else { return false }
                }
                return true
            }
            #expect(allAcked, "every worker acked each event of the order its queue is bound to")
            let apiMetrics = try await scrape(nil)
            #expect(delta("api", apiMetrics, "orders_placed_total") == 1)
            #expect(delta("api", apiMetrics, "http_request_duration_seconds_count", ["route": "/api/v1/orders", "method": "POST", "status": "201"]) == 1)
            #expect(prometheusValue(apiMetrics, "amqp_publish_confirm_seconds_count") >= 1)
            #expect(apiMetrics.contains("db_pool_connections_in_use"))
            #expect(apiMetrics.contains("outbox_unpublished"))

            let expected: [(WorkerRole, [String])] = [
                (.stock, ["order.placed", "order.confirmed"]), (.payment, ["payment.requested"]),
                (.order, ["stock.reserved", "payment.succeeded"]), (.notification, ["order.confirmed"]),
            ]
            for (role, types) in expected {
                let text = try await scrape(role)
                for type in types {
                    let labels = ["queue": stack.names.queue(role), "type": type]
                    #expect(delta(role.rawValue, text, "messages_consumed_total", labels) == 1, "\(role) consumed \(type)")
                    #expect(delta(role.rawValue, text, "messages_acked_total", labels) == 1, "\(role) acked \(type)")
                    #expect(delta(role.rawValue, text, "message_handler_duration_seconds_count", labels) == 1, "\(role) handled \(type)")
                }
                #expect(delta(role.rawValue, text, "messages_dead_lettered_total") == 0)
                #expect(delta(role.rawValue, text, "messages_retried_total") == 0)
                #expect(delta(role.rawValue, text, "messages_duplicate_total") == 0, "\(role) saw no duplicate")
                // Every handled message took at least its transaction's round trip.
                #expect(delta(role.rawValue, text, "postgres_round_trips_total") >= bound(role), "\(role) counted its round trips")
            }
            #expect(delta("api", apiMetrics, "postgres_round_trips_total") >= 2, "the placement's round trips are counted")
            let order = try await scrape(.order)
            #expect(delta("order", order, "orders_finalized_total", ["status": "CONFIRMED"]) == 1)
            #expect(delta("order", order, "saga_step_seconds_count", ["step": "reserved"]) == 1)
            #expect(delta("order", order, "saga_step_seconds_count", ["step": "confirmed"]) == 1)
            #expect(delta("payment", try await scrape(.payment), "saga_step_seconds_count", ["step": "paid"]) == 1)

            // The same five events again, same message ids: each worker skips them as duplicates,
            // counts each one, and records nothing new in its inbox.
            let inbox = try await stack.count("SELECT count(*) FROM inbox")
            let rows = try await stack.db.query("SELECT payload::text AS body FROM outbox WHERE order_id = $1", [orderId])
            #expect(rows.count == sagaTypes.count)
            let publisher = AMQPPublisher(configuration: stack.amqp)
            let messages = try rows.map { row -> AMQPOutgoingMessage in
                let body = Array(try row.decode(String.self, "body").utf8)
                return OutboxStore.message(for: try EventEnvelope.decode(body), body: body, exchange: stack.names.eventsExchange)
            }
            #expect(try await publisher.publish(messages).allSatisfy { $0 == .confirmed })
            await publisher.close()
            for role in WorkerRole.allCases {
                let skipped = await TestEnvironment.eventually {
                    guard let text = try? await scrape(role) else { return false }
                    return delta(role.rawValue, text, "messages_duplicate_total") == bound(role)
                        && delta(role.rawValue, text, "messages_acked_total") == 2 * bound(role)
                }
                #expect(skipped, "\(role) counted \(bound(role)) duplicates and acked them")
            }
            #expect(try await stack.count("SELECT count(*) FROM inbox") == inbox)
            workers.stopAll()
            api.stop()
        }
    }
}
