import AMQP

/// Reads how many messages wait ready in work queues, so a sweep can tell an order that is
/// only queued behind a backlog from one whose message was lost.
///
/// Each read opens a connection of its own (a passive declare of a missing queue closes its
/// channel, which must not happen to a publisher's) and closes it again: the saga reconciler
/// reads at most once per pass, and only when it found stalled orders. The connect and each
/// read have a deadline (a frozen broker costs a pass a few seconds, not a hang); a queue
/// that cannot be read is absent from the answer, and the caller decides what "unknown" means.
package struct WorkQueueBacklog: Sendable {
    let amqp: AMQPConfiguration

    /// Reads queues on the broker of `amqp`, giving up on a connect or a read after `deadline`.
    package init(amqp: AMQPConfiguration, deadline: Duration = .seconds(3)) {
        var amqp = amqp
        amqp.connectTimeout = min(amqp.connectTimeout, deadline)
        amqp.rpcTimeout = min(amqp.rpcTimeout, deadline)
        amqp.connectionName = "emporium-backlog"
        self.amqp = amqp
    }

    /// Ready messages per queue of `queues`; a queue that could not be read is left out.
    package func ready(in queues: Set<String>) async -> [String: Int] {
        guard !queues.isEmpty, let connection = try? await AMQPConnection.connect(configuration: amqp) else { return [:] }
        var ready: [String: Int] = [:]
        for queue in queues {
            if let status = try? await connection.queueStatus(queue) { ready[queue] = status.messages }
        }
        await connection.close()
        return ready
    }
}
