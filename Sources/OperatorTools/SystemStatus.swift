import AMQP
import Domain
import Foundation
import Messaging
import Postgres
import Store

/// The one-screen overview behind `emporium status`: each role's queue (ready messages,
/// consumers) and dead-letter depth, the outbox backlog, and orders by status. A part that
/// cannot be read (its server is down) is reported as an error, not left out.
package struct StatusReport: Sendable, Encodable {
    /// A role's work queue and its dead-letter queue.
    package struct Queue: Sendable, Encodable {
        package let role: String
        package let queue: String
        package let ready: Int?
        package let consumers: Int?
        package let deadLetters: Int?
        /// Creates a row.
        package init(role: String, queue: String, ready: Int?, consumers: Int?, deadLetters: Int?) {
            self.role = role
            self.queue = queue
            self.ready = ready
            self.consumers = consumers
            self.deadLetters = deadLetters
        }
    }

    /// Events committed but not yet published (the relay's backlog), and rows the relay
    /// parked for an operator (`emporium outbox parked`).
    package struct Outbox: Sendable, Encodable {
        package let unpublished: Int
        package let oldestAgeSeconds: Int?
        package let parked: Int
        /// Creates the figures.
        package init(unpublished: Int, oldestAgeSeconds: Int?, parked: Int) {
            self.unpublished = unpublished
            self.oldestAgeSeconds = oldestAgeSeconds
            self.parked = parked
        }
    }

    package var queues: [Queue] = []
    package var outbox: Outbox?
    /// Order count per status.
    package var orders: [String: Int]?
    /// What could not be read, by part (`rabbitmq`, `postgres`).
    package var errors: [String: String] = [:]
    /// An empty report.
    package init() {}
}

/// Collects a ``StatusReport`` from the broker and the database.
package struct SystemStatus: Sendable {
    let amqp: AMQPConfiguration
    let names: MessagingNames
    let pool: PostgresPool

    /// Creates the collector for `names` on the given servers.
    package init(amqp: AMQPConfiguration, names: MessagingNames, pool: PostgresPool) {
        self.amqp = amqp
        self.names = names
        self.pool = pool
    }

    /// Reads everything; never throws for an unreachable server (see ``StatusReport/errors``).
    package func collect() async -> StatusReport {
        var report = StatusReport()
        do {
            var config = amqp
            config.connectTimeout = .seconds(3)
            config.connectionName = "emporium-status"
            let connection = try await AMQPConnection.connect(configuration: config)
            for role in WorkerRole.allCases {
                // A queue that does not exist yet (no worker ever started) reads as absent.
                let work = try? await connection.queueStatus(names.queue(role))
                let dead = try? await connection.queueStatus(names.deadLetterQueue(role))
                report.queues.append(
                    .init(role: role.rawValue, queue: names.queue(role), ready: work?.messages, consumers: work?.consumers, deadLetters: dead?.messages))
            }
            await connection.close()
        } catch {
            report.errors["rabbitmq"] = "\(error)"
        }
        do {
            let backlog = try await OutboxStore.backlog(on: pool)
            report.outbox = .init(unpublished: backlog.unpublished, oldestAgeSeconds: backlog.oldestSeconds.map { Int($0.rounded()) }, parked: backlog.parked)
            report.orders = try await OrderStore().countsByStatus(on: pool)
        } catch {
            report.errors["postgres"] = (error as? PostgresError)?.message ?? "\(error)"
        }
        return report
    }
}
