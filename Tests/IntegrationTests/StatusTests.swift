import Domain
import Foundation
import Messaging
import TestSupport
import Testing

@Suite("emporium status", .timeLimit(.minutes(10)))
struct StatusTests {
    @Test("prints queues with their consumers and dead letters, the outbox backlog and orders by status; a dead broker is an error")
    func overview() async throws {
        try await Stack.run { stack in
            let (_, _, _, orderId) = try await stack.purchase(stock: 5)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            // Settled: the notification is the last step, and its events are published.
            #expect(
                await TestEnvironment.eventually {
                    let notified = try? await stack.count("SELECT count(*) FROM notifications WHERE order_id = $1", [orderId])
                    let unpublished = try? await stack.count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    return notified == 1 && unpublished == 0
                })
            let cli = CLI(stack: stack)

            let json = try cli.run("status", "--json")
            #expect(json.status == 0, "\(json.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let queues = try #require(report["queues"] as? [[String: Any]])
            #expect(Set(queues.compactMap { $0["role"] as? String }) == Set(WorkerRole.allCases.map(\.rawValue)))
            for queue in queues {
                #expect((queue["consumers"] as? Int ?? 0) >= 1, "\(queue)")
                #expect(queue["dead_letters"] as? Int == 0)
                #expect(queue["queue"] as? String == "\(stack.names.namespace).\(queue["role"] as? String ?? "")")
            }
            #expect((report["outbox"] as? [String: Any])?["unpublished"] as? Int == 0)
            #expect((report["orders"] as? [String: Int])?["CONFIRMED"] == 1)
            #expect((report["errors"] as? [String: Any])?.isEmpty == true)

            let text = try cli.run("status")
            #expect(text.status == 0)
            #expect(text.stdout.contains("QUEUES"))
            #expect(text.stdout.contains("\(stack.names.namespace).payment"))
            #expect(text.stdout.contains("ORDERS  CONFIRMED 1"))
            #expect(text.stdout.contains("OUTBOX  0 unpublished"))

            var deadBroker = CLI(stack: stack)
            deadBroker.overrides["AMQP_URL"] = "amqp://emporium:emporium@127.0.0.1:1/%2F"
            let failed = try deadBroker.run("status")
            #expect(failed.status == 1)
            #expect(failed.stdout.contains("RabbitMQ unreachable"))
            #expect(failed.stdout.contains("ORDERS  CONFIRMED 1"))
        }
    }
}
