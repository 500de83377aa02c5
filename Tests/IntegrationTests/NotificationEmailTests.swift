import Domain
import Foundation
import Messaging
import TestSupport
import Testing

@Suite("Notifications by email through SMTP", .timeLimit(.minutes(10)))
struct NotificationEmailTests {
    @Test("with SMTP_HOST set, an order's confirmation is emailed once, to the customer, and recorded")
    func emailedOnce() async throws {
        let sink = try SMTPSink()
        defer { sink.close() }
        try await Stack.apiOnly { stack in
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10)
            let name = TestEnvironment.uniqueName("mail")
            let (_, token) = try await stack.customer(name)
            try await stack.addToCart(token, productId, quantity: 1)
            let workers = try WorkerProcesses(
                stack: stack, providerLatencyMS: 0,
                extraEnvironment: [
                    "SMTP_HOST": "127.0.0.1", "SMTP_PORT": String(sink.port), "MAIL_FROM": "shop@emporium.test",
                ])
            for role in WorkerRole.allCases { try workers.start(role) }
            let orderId = try await stack.placeOrder(token)
            #expect(try await stack.awaitTerminal(orderId, timeout: .seconds(60)).status == "CONFIRMED")
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { sink.messages.count == 1 }, "\(workers.log(.notification).suffix(2000))")
            let message = try #require(sink.messages.first)
            #expect(message.to == "\(name)@example.com")
            #expect(message.from == "shop@emporium.test")
            let orderNumber = try await stack.db.query("SELECT order_number FROM orders WHERE id = $1", [orderId])[0].decode(String.self, "order_number")
            #expect(message.data.contains("is confirmed"))
            #expect(message.data.contains(orderNumber))
            #expect(message.data.contains("To: \(name)@example.com"))
            // The record commits after the relay took the message (record, send, commit): wait for it.
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(10)) {
                    (try? await stack.count("SELECT count(*) FROM notifications WHERE order_id = $1 AND channel = 'email'", [orderId])) == 1
                })
            // Nothing more is sent for the rest of the workers' lives (no second send of the same
            // event): SIGTERM drains what they hold, and once they have exited nothing can send.
            workers.stopAll()
            #expect(workers.exitStatuses.allSatisfy { $0 == 0 }, "a worker did not drain and exit cleanly")
            #expect(sink.messages.count == 1)
        }
    }

    @Test("a relay refusing the recipient (550) dead-letters the notification instead of retrying it forever")
    func refusedRecipient() async throws {
        let sink = try SMTPSink(refuseRecipients: true)
        defer { sink.close() }
        try await Stack.apiOnly { stack in
            let (_, _, (_, token)) = try await stack.filledCart(stock: 10)
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 0, extraEnvironment: ["SMTP_HOST": "127.0.0.1", "SMTP_PORT": String(sink.port)])
            for role in WorkerRole.allCases { try workers.start(role) }
            let orderId = try await stack.placeOrder(token)
            #expect(try await stack.awaitTerminal(orderId, timeout: .seconds(60)).status == "CONFIRMED")
            let cli = CLI(stack: stack)
            let deadLettered = await TestEnvironment.eventually(timeout: .seconds(30)) {
                let listed = try? cli.run("dlq", "list", "--queue", "notification", "--order", orderId.uuidString, "--json")
                return listed?.stdout.contains("550") == true
            }
            #expect(deadLettered, "\(workers.log(.notification).suffix(2000))")
            // Refused at once (permanent), not retried: nothing recorded, nothing sent.
            #expect(try await stack.count("SELECT count(*) FROM notifications WHERE order_id = $1", [orderId]) == 0)
            #expect(sink.messages.isEmpty)
            workers.stopAll()
        }
    }
}
