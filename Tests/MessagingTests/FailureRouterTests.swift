import Foundation
import Testing

@testable import AMQP
@testable import Messaging

@Suite("Failure routing (pure, no I/O)", .timeLimit(.minutes(10)))
struct FailureRouterTests {
    let names = MessagingNames(namespace: "t")
    var policy: QueuePolicy {
        var policy = QueuePolicy()
        policy.retryDelays = [.milliseconds(300), .milliseconds(1_200)]
        policy.maxAttempts = 4
        return policy
    }

    private func delivery(headers: AMQPTable = [:], exchange: String = "t.events") -> AMQPDelivery {
        AMQPDelivery(
            deliveryTag: 1, redelivered: false, exchange: exchange, routingKey: "payment.requested", body: [1],
            properties: AMQPProperties(messageID: "m-1", type: "payment.requested", headers: headers), generation: 0)
    }

    @Test("transient failures take growing delay steps, the last repeats, then the DLQ after the attempt limit")
    func growingDelays() {
        let router = FailureRouter(names: names, policy: policy, role: .payment)
        var headers: AMQPTable = [:]
        var routes: [FailureRoute] = []
        for _ in 0..<4 {
            let (route, message) = router.route(
                delivery(headers: headers, exchange: headers.isEmpty ? "t.events" : ""), error: "provider down", failure: .transient)
            routes.append(route)
            headers = message.properties.headers
        }
        #expect(
            routes == [
                .retry(queue: "t.payment.retry.300ms", delay: .milliseconds(300)),
                .retry(queue: "t.payment.retry.1200ms", delay: .milliseconds(1_200)),
                .retry(queue: "t.payment.retry.1200ms", delay: .milliseconds(1_200)),
                .deadLetter(queue: "t.payment.dlq"),
            ])
        #expect(headers[DeadLetterHeader.attempts]?.intValue == 4)
        #expect(headers[DeadLetterHeader.originalExchange]?.stringValue == "t.events")
        #expect(headers[DeadLetterHeader.originalRoutingKey]?.stringValue == "payment.requested")
        #expect(headers[DeadLetterHeader.firstFailureAt] != nil)
    }

    @Test("a permanent failure goes straight to the DLQ with its headers, keeping the message id")
    func permanent() {
        let router = FailureRouter(names: names, policy: policy, role: .stock)
        let (route, message) = router.route(delivery(), error: String(repeating: "x", count: 5_000), failure: .permanent)
        #expect(route == .deadLetter(queue: "t.stock.dlq"))
        #expect(message.exchange == "" && message.routingKey == "t.stock.dlq")
        #expect(message.properties.messageID == "m-1")
        #expect(message.properties.headers[DeadLetterHeader.errorClass]?.stringValue == "permanent")
        #expect(message.properties.headers[DeadLetterHeader.error]?.stringValue?.count == 1_000)
        #expect(message.properties.persistent)
    }

    @Test("retry queues hand messages back to their work queue after their TTL")
    func topology() {
        let topology = names.topology(policy: policy)
        let retry = topology.queues.first { $0.name == "t.payment.retry.300ms" }
        #expect(retry?.arguments["x-message-ttl"] == .int(300))
        #expect(retry?.arguments["x-dead-letter-exchange"] == .string(""))
        #expect(retry?.arguments["x-dead-letter-routing-key"] == .string("t.payment"))
        let work = topology.queues.first { $0.name == "t.payment" }
        #expect(work?.arguments["x-queue-type"] == .string("quorum"))
        #expect(work?.arguments["x-delivery-limit"] == .int(Int64(policy.deliveryLimit)))
    }
}
