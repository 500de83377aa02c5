import AMQP
import Foundation
import Logging
import Metrics
import Postgres
import ServiceLifecycle
import Synchronization

/// Publishes committed outbox rows with publisher confirms and marks them published, only
/// after the broker confirmed them. Failures are logged and left to the relay.
package struct OutboxPublisher: Sendable {
    /// The confirmed publisher underneath (workers also route failed messages through it).
    package let publisher: AMQPPublisher
    let pool: PostgresPool
    /// Where after-commit marks run: a connection of their own, so a mark never queues
    /// behind the handlers' transactions for a pooled one. A mark that waited longer than
    /// the relay's grace period would let the relay publish the event a second time.
    let markPool: PostgresPool
    let exchange: String
    /// The process's logger.
    package let logger: Logger
    /// Events handed over by ``publishSoon(_:)``, published in batches by the relay.
    let committed = CommittedEvents(limit: 10_000)
    /// Ids of handed-over events the broker confirmed, marked in batches by the relay (see
    /// ``markInterval``).
    let confirmedUnmarked = HandOverQueue<UUID>(limit: 100_000)
    /// The least time between two marks of handed-over events. Below saturation each batch
    /// publishes one or two events; marked at once, each would be a transaction of its own
    /// (4.4 per order at 100 orders/s, measured). Waiting this long lets the marks of the
    /// events confirmed meanwhile share one `UPDATE` and one commit. Nothing waits for a mark
    /// but the relay, which leaves a row alone for its grace period (2 s by default); the
    /// relay uses at most a quarter of that.
    let markInterval: Duration
    /// One warning when publishing after commit starts failing (a broker outage), one notice
    /// when it works again.
    let afterCommitFailures: FailureStreak

    /// Creates a publisher for events on `exchange`.
    /// `markPool` (one connection is enough; defaults to `pool`) marks published rows.
    package init(
        publisher: AMQPPublisher, pool: PostgresPool, markPool: PostgresPool? = nil, exchange: String, logger: Logger,
        markInterval: Duration = .milliseconds(100)
    ) {
        self.publisher = publisher
        self.pool = pool
        self.markPool = markPool ?? pool
        self.markInterval = markInterval
        self.exchange = exchange
        self.logger = logger
        self.afterCommitFailures = FailureStreak(task: "publishing after commit (the outbox relay retries what is left)", logger: logger)
    }

    /// Publishes events that were just committed to the outbox for the events exchange;
    /// returns how many the broker confirmed (and were marked). Never throws: the relay
    /// retries what is left.
    @discardableResult
    package func publishCommitted(_ events: [EventEnvelope]) async -> Int {
        await publishCommitted(events.map { CommittedEvent(event: $0, queue: nil) })
    }

    /// With `marksLater`, the confirmed events' rows are marked by ``markConfirmedBatches(every:)``,
    /// not before this returns.
    @discardableResult
    func publishCommitted(_ items: [CommittedEvent], marksLater: Bool = false) async -> Int {
        guard !items.isEmpty else { return 0 }
        do {
            let messages = try items.map { item in
                let destination: OutboxStore.Destination = item.queue.map { .queue($0) } ?? .exchange(exchange)
                return OutboxStore.message(
                    for: item.event, body: try item.body ?? item.event.encoded(), exchange: destination.exchange,
                    routingKey: destination.routingKey(for: item.event))
            }
            let confirmed = try await publishAndMark(ids: items.map(\.event.id), messages: messages, marksLater: marksLater).confirmed
            afterCommitFailures.succeeded()
            return confirmed
        } catch {
            afterCommitFailures.failed(error)
            return 0
        }
    }

    /// Hands events that were just committed to the outbox to the ``OutboxRelay``'s batch
    /// publisher and returns at once, so an HTTP response or an ack never waits for the
    /// broker. The batch publisher sends everything handed over meanwhile in one confirm
    /// window and marks it with one statement. What it cannot publish stays unpublished in
    /// the table, where the relay's poll finds it: the outbox row, not this call, is the promise.
    package func publishSoon(_ events: [EventEnvelope]) {
        committed.add(events.map { CommittedEvent(event: $0, queue: nil) })
    }

    /// ``publishSoon(_:)`` for events just appended with ``OutboxStore/append(_:exchange:on:)``:
    /// the bytes written to the outbox are the bytes published.
    package func publishSoon(_ appended: [OutboxStore.OutboxEvent]) {
        committed.add(appended.map { CommittedEvent(event: $0.event, queue: nil, body: $0.body) })
    }

    /// ``publishSoon(_:)`` for events committed to the outbox for one work queue
    /// (``Outbox/Destination/queue(_:)``).
    package func publishSoon(_ events: [EventEnvelope], toQueue queue: String) {
        committed.add(events.map { CommittedEvent(event: $0, queue: queue) })
    }

    /// Publishes what ``publishSoon(_:)`` collected until ``CommittedEvents/finish()``,
    /// then what is left, each time with ``publishHandedOver(leavingToTheRelayAfter:marksLater:)``;
    /// beside it, marks what the broker confirmed (``markConfirmedBatches(every:)``), the
    /// last marks after the last publish.
    func publishCommittedBatches(leavingToTheRelayAfter cutoff: Duration, markingEvery markInterval: Duration) async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.markConfirmedBatches(every: markInterval) }
            for await _ in committed.signals {
                await publishHandedOver(leavingToTheRelayAfter: cutoff, marksLater: true)
            }
            await publishHandedOver(leavingToTheRelayAfter: cutoff, marksLater: true)
            confirmedUnmarked.finish()
        }
    }

    /// Marks the rows of handed-over events the broker confirmed, in batches at most every
    /// `interval`, until ``confirmedUnmarked`` is finished; then marks what is left. A mark
    /// that fails is not retried here: the relay's poll republishes the row once its grace
    /// period is over, and the inboxes skip the duplicate.
    func markConfirmedBatches(every markInterval: Duration) async {
        var lastMark: ContinuousClock.Instant?
        for await _ in confirmedUnmarked.signals {
            if let lastMark, lastMark + markInterval > .now {
                // Shutdown does not cut this short: it is at most one interval (100 ms by
                // default), and the marks after it save the next start's relays a republish each.
                try? await Task.sleep(until: lastMark + markInterval, clock: .continuous)
            }
            await markConfirmed()
            lastMark = .now
        }
        await markConfirmed()
    }

    /// Marks every id in ``confirmedUnmarked``, ``batchLimit`` per statement.
    private func markConfirmed() async {
        while case let ids = confirmedUnmarked.take(max: Self.batchLimit), !ids.isEmpty {
            do {
                try await markPool.withConnection { try await OutboxStore.markPublished(ids, on: $0) }
                afterCommitFailures.succeeded()
            } catch {
                afterCommitFailures.failed(error)
            }
        }
    }

    /// Publishes the events handed over so far, in batches, except those handed over more
    /// than `cutoff` ago: their rows are left to the relay's poll, which publishes each once.
    /// The rows of the events published are marked before this returns, or with `marksLater`
    /// by ``markConfirmedBatches(every:)``.
    /// When the machine is saturated, events queue here; one that waited past the relay's
    /// grace period would be published twice, once here and once by a relay that claimed
    /// its row before this publish marked it (RabbitMQ and the inboxes then carry a
    /// duplicate). The relay passes `grace / 2`, so a publish begun here has the other half
    /// of the grace period to be confirmed and marked.
    package func publishHandedOver(leavingToTheRelayAfter cutoff: Duration, marksLater: Bool = false) async {
        while case let batch = committed.take(max: Self.batchLimit), !batch.isEmpty {
            let now = ContinuousClock.now
            let fresh = batch.filter { now - $0.handedOver < cutoff }
            if fresh.count < batch.count {
                logger.debug(
                    "events waited too long to be published after commit; left to the outbox relay", metadata: ["count": "\(batch.count - fresh.count)"])
            }
            await publishCommitted(fresh, marksLater: marksLater)
        }
    }

    /// The most events one batch publishes (and one UPDATE marks).
    static let batchLimit = 512

    /// Publishes `messages` and marks the confirmed ones' outbox rows (by `ids`). A row the
    /// broker returned or refused counts an attempt and keeps the reason; after
    /// ``OutboxRelay/parkAfterAttempts`` attempts it is parked: kept, no longer retried by
    /// the relay, counted in `outbox_parked` and listed by `emporium outbox parked`.
    /// With `marksLater` (and no `db`), confirmed rows are handed to ``markConfirmedBatches(every:)``.
    func publishAndMark(ids: [UUID], messages: [AMQPOutgoingMessage], on db: PostgresConnection? = nil, marksLater: Bool = false) async throws
        -> (confirmed: Int, parked: Int)
    {
        let outcomes = try await publisher.publish(messages)
        var confirmed: [UUID] = []
        var failed: [(UUID, String)] = []
        for (id, outcome) in zip(ids, outcomes) {
            switch outcome {
            case .confirmed: confirmed.append(id)
            case .returned(let code, let text): failed.append((id, "returned \(code) \(text)"))
            case .nacked: failed.append((id, "nacked by the broker"))
            }
        }
        if !confirmed.isEmpty {
            if marksLater && db == nil {
                confirmedUnmarked.add(confirmed)
            } else if let db {
                try await OutboxStore.markPublished(confirmed, on: db)
            } else {
                try await markPool.withConnection { try await OutboxStore.markPublished(confirmed, on: $0) }
            }
        }
        var parked = 0
        for (id, reason) in failed {
            logger.error("outbox event not accepted by the broker", metadata: ["message.id": "\(id)", "error": "\(reason)"])
            let isParked: Bool
            if let db {
                isParked = try await OutboxStore.noteRefused(id, reason: reason, parkAfter: OutboxRelay.parkAfterAttempts, on: db)
            } else {
                isParked = try await pool.withConnection {
                    try await OutboxStore.noteRefused(id, reason: reason, parkAfter: OutboxRelay.parkAfterAttempts, on: $0)
                }
            }
            if isParked {
                parked += 1
                logger.error(
                    "outbox row parked after \(OutboxRelay.parkAfterAttempts) refused attempts (emporium outbox parked)", metadata: ["message.id": "\(id)"])
            }
        }
        return (confirmed.count, parked)
    }
}

/// An event committed to the outbox, and the queue it is addressed to (nil: the events exchange).
struct CommittedEvent: Sendable {
    let event: EventEnvelope
    let queue: String?
    /// The envelope's bytes when the outbox append already encoded them.
    var body: [UInt8]? = nil
    /// When it was handed over for publishing (after its transaction committed).
    let handedOver = ContinuousClock.now
}

/// Claims outbox rows left unpublished (the writer crashed between commit and publish, or
/// the broker was down) and publishes them. Runs in every process that writes events.
///
/// Rows are claimed with `FOR UPDATE SKIP LOCKED` inside a transaction that stays open
/// until the broker confirmed them, so two relays never publish the same row at once;
/// a row younger than `grace` is left to its writer's own after-commit publish. The relay
/// also runs that after-commit publish: the batches of ``OutboxPublisher/publishSoon(_:)``.
package struct OutboxRelay: Service {
    let publisher: OutboxPublisher
    let interval: Duration
    let grace: Duration
    let batchSize: Int
    let backlogInterval: Duration

    /// Failed publish attempts (returned or refused by the broker, or an undecodable row)
    /// after which a row is parked (`OUTBOX_PARK_AFTER_ATTEMPTS` is not read: a row the
    /// broker refused ten times needs a person, not an eleventh try).
    package static let parkAfterAttempts = 10

    /// Creates a relay polling every `interval` and counting its backlog for the gauges every
    /// `backlogInterval`. The count is not part of the poll: it reads every unpublished row
    /// and, until autovacuum has passed, every row marked published since (a bitmap scan of
    /// the partial index cannot skip dead entries). Run each second by every process, it
    /// cost PostgreSQL 0.9 ms per order at saturation, 15% of its statements' time.
    package init(
        publisher: OutboxPublisher, interval: Duration = .seconds(1), grace: Duration = .seconds(2), batchSize: Int = 200,
        backlogInterval: Duration = .seconds(15)
    ) {
        self.publisher = publisher
        self.interval = interval
        self.grace = grace
        self.batchSize = batchSize
        self.backlogInterval = backlogInterval
    }

    package func run() async throws {
        let publisher = self.publisher
        await withDiscardingTaskGroup { group in
            // Events this process just committed, in batches, as they come.
            group.addTask { [grace] in
                await publisher.publishCommittedBatches(leavingToTheRelayAfter: grace / 2, markingEvery: min(publisher.markInterval, grace / 4))
            }
            var lastReport: ContinuousClock.Instant?
            await runPeriodically(every: interval, task: "outbox relay", logger: publisher.logger) {
                // Drain a backlog quickly, then poll.
                while try await relayOnce() == batchSize {}
                let now = ContinuousClock.now
                if lastReport.map({ now - $0 >= backlogInterval }) ?? true {
                    try await reportBacklog()
                    lastReport = now
                }
            }
            // The batch publisher sends what is still in hand (what waited too long is the
            // relay's, in this process or another), then ends.
            publisher.committed.finish()
        }
    }

    /// `outbox_unpublished`, `outbox_oldest_unpublished_age_seconds` and `outbox_parked`,
    /// after each pass.
    func reportBacklog() async throws {
        let backlog = try await OutboxStore.backlog(on: publisher.pool)
        Gauge(label: "outbox_unpublished").record(backlog.unpublished)
        Gauge(label: "outbox_parked").record(backlog.parked)
        Gauge(label: "outbox_oldest_unpublished_age_seconds").record(backlog.oldestSeconds ?? 0)
    }

    /// One pass: publishes up to `batchSize` stale rows; returns how many rows it settled
    /// (confirmed, or parked because they cannot be published; a row the broker refused but
    /// that has attempts left is not counted). A row that cannot be
    /// decoded is parked at once with the reason, so it never stops the rows behind it.
    @discardableResult
    package func relayOnce() async throws -> Int {
        try await publisher.pool.withTransaction { db in
            let rows = try await OutboxStore.claimStale(olderThan: grace, limit: batchSize, on: db)
            guard !rows.isEmpty else { return 0 }
            var ids: [UUID] = []
            var messages: [AMQPOutgoingMessage] = []
            var parked = 0
            for row in rows {
                do {
                    let event = try EventEnvelope.decode(row.body)
                    messages.append(OutboxStore.message(for: event, body: row.body, exchange: row.exchange, routingKey: row.routingKey))
                    ids.append(row.id)
                } catch {
                    parked += 1
                    publisher.logger.error(
                        "outbox row cannot be decoded; parked for an operator (emporium outbox parked)",
                        metadata: ["message.id": "\(row.id)", "error": "\(error)"])
                    try await OutboxStore.park(row.id, reason: "undecodable: \(error)", on: db)
                }
            }
            let (confirmed, refused) = ids.isEmpty ? (0, 0) : try await publisher.publishAndMark(ids: ids, messages: messages, on: db)
            if confirmed > 0 {
                publisher.logger.info("outbox relay published unpublished events", metadata: ["count": "\(confirmed)"])
            }
            return confirmed + parked + refused
        }
    }
}
