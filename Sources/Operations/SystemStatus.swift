import AMQP
import Foundation
import Messaging
import Postgres

/// The one-screen overview behind `emporium status`: each role's queue (ready messages,
/// consumers) and dead-letter depth, the outbox backlog, and orders by status. A part that
/// cannot be read (its server is down) is reported as an error, not left out.
public struct StatusReport: Sendable, Encodable {
    /// A role's work queue and its dead-letter queue.
    public struct Queue: Sendable, Encodable {
        public let role: String
        public let queue: String
        public let ready: Int?
        public let consumers: Int?
        public let deadLetters: Int?
    }

    /// Events committed but not yet published (the relay's backlog), and rows the relay
    /// parked for an operator (`emporium outbox parked`).
    public struct Outbox: Sendable, Encodable {
        public let unpublished: Int
        public let oldestAgeSeconds: Int?
        public let parked: Int
    }

    public var queues: [Queue] = []
    public var outbox: Outbox?
    /// Order count per status.
    public var orders: [String: Int]?
    /// What could not be read, by part (`rabbitmq`, `postgres`).
    public var errors: [String: String] = [:]
}

/// Collects a ``StatusReport`` from the broker and the database.
public struct SystemStatus: Sendable {
    let amqp: AMQPConfiguration
    let names: MessagingNames
    let pool: PostgresPool

    /// Creates the collector for `names` on the given servers.
    public init(amqp: AMQPConfiguration, names: MessagingNames, pool: PostgresPool) {
        self.amqp = amqp
        self.names = names
        self.pool = pool
    }

    /// Reads everything; never throws for an unreachable server (see ``StatusReport/errors``).
    public func collect() async -> StatusReport {
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
                report.queues.append(.init(role: role.rawValue, queue: names.queue(role), ready: work?.messages, consumers: work?.consumers, deadLetters: dead?.messages))
            }
            await connection.close()
        } catch {
            report.errors["rabbitmq"] = "\(error)"
        }
        do {
            let outbox = try await pool.query(
                """
                SELECT count(*) FILTER (WHERE parked_at IS NULL) AS n, count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked,
                       extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL))::int8 AS oldest
                FROM outbox WHERE published_at IS NULL
                """)[0]
            report.outbox = .init(unpublished: try outbox.decode(Int.self, "n"), oldestAgeSeconds: try outbox.decode(Int?.self, "oldest"),
                                  parked: try outbox.decode(Int.self, "parked"))
            var orders: [String: Int] = [:]
            for row in try await pool.query("SELECT status, count(*) AS n FROM orders GROUP BY status") {
                orders[try row.decode(String.self, "status")] = try row.decode(Int.self, "n")
            }
            report.orders = orders
        } catch {
            report.errors["postgres"] = (error as? PostgresError)?.message ?? "\(error)"
        }
        return report
    }
}
