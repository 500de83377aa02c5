import AMQP
import ArgumentParser
import Foundation
import Messaging
import OperatorTools
import Postgres

/// `emporium status`: queues, consumers, dead letters, the outbox backlog and orders by
/// status on one screen. Exits 1 when a server could not be read (and says which).
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Queue depths, consumers, dead letters, outbox backlog and orders by status (DATABASE_URL, AMQP_URL, EMPORIUM_NAMESPACE).")
    @Flag(help: "JSON output.") var json = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var postgres = try PostgresConfiguration.fromEnvironment(environment)
        postgres.connectTimeout = .seconds(3)
        let pool = PostgresPool(configuration: postgres, maxConnections: 1, acquireTimeout: .seconds(5))
        let report = await SystemStatus(amqp: try AMQPConfiguration.fromEnvironment(environment), names: .fromEnvironment(environment), pool: pool).collect()
        await pool.close()
        if json {
            try printJSON(report)
        } else {
            print(Self.render(report))
        }
        if !report.errors.isEmpty { throw ExitCode(1) }
    }

    static func render(_ report: StatusReport) -> String {
        func cell(_ value: Int?) -> String { value.map(String.init) ?? "-" }
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count) }
        var lines = ["QUEUES", pad("ROLE", 14) + pad("QUEUE", 32) + pad("READY", 8) + pad("CONSUMERS", 11) + "DEAD LETTERS"]
        for queue in report.queues {
            lines.append(pad(queue.role, 14) + pad(queue.queue, 32) + pad(cell(queue.ready), 8) + pad(cell(queue.consumers), 11) + cell(queue.deadLetters))
        }
        if let error = report.errors["rabbitmq"] { lines.append("RabbitMQ unreachable: \(error)") }
        lines.append("")
        if let outbox = report.outbox {
            lines.append(
                "OUTBOX  \(outbox.unpublished) unpublished" + (outbox.oldestAgeSeconds.map { ", oldest \($0) s" } ?? "")
                    + (outbox.parked > 0 ? ", \(outbox.parked) parked (emporium outbox parked)" : ""))
        }
        if let orders = report.orders {
            lines.append("ORDERS  " + (orders.isEmpty ? "none" : orders.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: "  ")))
        }
        if let error = report.errors["postgres"] { lines.append("PostgreSQL unreachable: \(error)") }
        return lines.joined(separator: "\n")
    }
}
