import AMQP
import Domain
import Foundation
import Messaging
import Units

/// One dead-lettered message, as `emporium dlq` shows it.
package struct DeadLetter: Sendable, Encodable {
    /// The dead-letter queue holding it.
    package let queue: String
    package let messageId: String
    package let type: String?
    package let orderId: String?
    /// The last error, or the broker's reason for a message that crashed its worker.
    package let error: String
    package let errorClass: String?
    package let attempts: Int
    package let consumer: String?
    package let originalExchange: String?
    package let originalRoutingKey: String?
    package let firstFailureAt: Date?
    package let lastFailureAt: Date?
    package let replayCount: Int
    /// Seconds since it last failed.
    package let ageSeconds: Int
    package let headers: [String: String]
    package let body: String
}

/// Which dead letters a command applies to.
package struct DeadLetterFilter: Sendable {
    /// Role names or queue names (work or dead-letter); empty means every role.
    package var queues: [String] = []
    package var type: String?
    package var orderId: String?
    /// A regular expression matched against the error text.
    package var errorPattern: String?
    package var olderThan: Duration?
    package var newerThan: Duration?
    /// Only these message ids (replay `--id`).
    package var messageIds: Set<String> = []

    /// No filter at all.
    package init() {}

    /// Whether any filter is set (purge refuses to run without one or `--all`).
    package var isEmpty: Bool {
        queues.isEmpty && type == nil && orderId == nil && errorPattern == nil && olderThan == nil && newerThan == nil && messageIds.isEmpty
    }

    func matches(_ letter: DeadLetter, regex: NSRegularExpression?) -> Bool {
        if let type, letter.type != type { return false }
        if let orderId, letter.orderId?.lowercased() != orderId.lowercased() { return false }
        if let regex, regex.firstMatch(in: letter.error, range: NSRange(letter.error.startIndex..., in: letter.error)) == nil { return false }
        if let olderThan, Double(letter.ageSeconds) < seconds(olderThan) { return false }
        if let newerThan, Double(letter.ageSeconds) > seconds(newerThan) { return false }
        if !messageIds.isEmpty, !messageIds.contains(letter.messageId) { return false }
        return true
    }
}

/// A dead-letter queue's depth and the age of its oldest message.
package struct DeadLetterQueueStats: Sendable, Encodable {
    package let queue: String
    package let depth: Int
    package let oldestAgeSeconds: Int?
}

/// What a replay did (or, with `dryRun`, would do).
package struct ReplayReport: Sendable, Encodable {
    /// Republished to their original queue (or, on a dry run, those that would be).
    package var replayed: [DeadLetter] = []
    /// Left in place: replayed `guardLimit` times already and no `--force`.
    package var refused: [DeadLetter] = []
    package var dryRun = false
    package var elapsedSeconds: Double = 0
    /// Replayed per second over the run.
    package var ratePerSecond: Double { elapsedSeconds > 0 ? Double(replayed.count) / elapsedSeconds : 0 }
}

/// Errors `emporium dlq` reports with a message and a non-zero exit.
package struct DeadLetterError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// Reads, replays and purges dead letters.
///
/// Reading never consumes: messages are fetched without acknowledgement and put back,
/// in place, at the end (dead-letter queues are classic queues, which keep a requeued
/// message's position). A replay republishes a copy to the message's original work queue
/// with publisher confirms and only then acknowledges the dead copy, so a crash mid-replay
/// can duplicate a message (which the consumers' inbox absorbs) but never lose one. The
/// message id is kept, so inbox dedup still holds.
package struct DeadLetters: Sendable {
    /// Replays after which a message is refused without `force`.
    package static let guardLimit = 3
    /// The most messages one command reads from a queue.
    package static let scanLimit = 100_000

    let amqp: AMQPConfiguration
    let names: MessagingNames

    /// Creates the tool for the broker and namespace given.
    package init(amqp: AMQPConfiguration, names: MessagingNames) {
        self.amqp = amqp
        self.names = names
    }

    /// The dead-letter queues the filter selects.
    package func queues(for filter: DeadLetterFilter) throws -> [String] {
        if filter.queues.isEmpty { return WorkerRole.allCases.map(names.deadLetterQueue) }
        return try filter.queues.map { name in
            guard let role = names.role(ofQueue: name) else {
                throw DeadLetterError("unknown queue \(name): use one of \(WorkerRole.allCases.map(\.rawValue).joined(separator: ", ")) or a full queue name")
            }
            return names.deadLetterQueue(role)
        }
    }

    /// Matching dead letters, oldest first per queue, without consuming anything.
    package func list(_ filter: DeadLetterFilter, limit: Int = 1_000) async throws -> [DeadLetter] {
        let regex = try compile(filter.errorPattern)
        var result: [DeadLetter] = []
        for queue in try queues(for: filter) {
            try await browse(queue) { letters, _ in
                result += letters.map(\.1).filter { filter.matches($0, regex: regex) }
            }
            if result.count >= limit { break }
        }
        return Array(result.prefix(limit))
    }

    /// The dead letter with `messageId`, from any queue.
    package func show(_ messageId: String) async throws -> DeadLetter? {
        var filter = DeadLetterFilter()
        filter.messageIds = [messageId]
        return try await list(filter, limit: 1).first
    }

    /// Depth and oldest age of every dead-letter queue.
    package func stats() async throws -> [DeadLetterQueueStats] {
        let connection = try await connect()
        var stats: [DeadLetterQueueStats] = []
        for queue in WorkerRole.allCases.map(names.deadLetterQueue) {
            let depth = (try? await connection.queueStatus(queue).messages) ?? 0
            var oldest: Int?
            if depth > 0, let head = try await connection.get(queue: queue) {
                oldest = letter(head, queue: queue).ageSeconds
                try await connection.requeueAll()
            }
            stats.append(DeadLetterQueueStats(queue: queue, depth: depth, oldestAgeSeconds: oldest))
        }
        await connection.close()
        return stats
    }

    /// Republishes matching dead letters to their original queues. `rate` paces them (per
    /// second), `max` caps how many, `force` lifts the replay guard; `progress` hears of
    /// each one as it goes.
    package func replay(
        _ filter: DeadLetterFilter, dryRun: Bool = false, rate: Double? = nil, max: Int? = nil, force: Bool = false,
        progress: @Sendable (DeadLetter) -> Void = { _ in }
    ) async throws -> ReplayReport {
        let regex = try compile(filter.errorPattern)
        var report = ReplayReport()
        report.dryRun = dryRun
        let publisher = AMQPPublisher(configuration: amqp)
        let start = ContinuousClock.now
        var lastSend: ContinuousClock.Instant?
        defer { Task { await publisher.close() } }
        for queue in try queues(for: filter) {
            try await browse(queue) { letters, connection in
                for (delivery, letter) in letters where filter.matches(letter, regex: regex) {
                    if let max, report.replayed.count >= max { break }
                    if letter.replayCount >= Self.guardLimit && !force {
                        report.refused.append(letter)
                        continue
                    }
                    if dryRun {
                        report.replayed.append(letter)
                        progress(letter)
                        continue
                    }
                    if let rate, rate > 0, let lastSend {
                        let next = lastSend + .milliseconds(Int(1_000 / rate))
                        if next > .now { try await Task.sleep(until: next, clock: .continuous) }
                    }
                    lastSend = .now
                    try await publisher.publish(replayCopy(of: delivery, from: queue, replayCount: letter.replayCount + 1))
                    try await connection.ack(delivery)
                    report.replayed.append(letter)
                    progress(letter)
                }
            }
        }
        report.elapsedSeconds = seconds(ContinuousClock.now - start)
        return report
    }

    /// Removes matching dead letters; returns what it removed.
    package func purge(_ filter: DeadLetterFilter) async throws -> [DeadLetter] {
        let regex = try compile(filter.errorPattern)
        var removed: [DeadLetter] = []
        for queue in try queues(for: filter) {
            try await browse(queue) { letters, connection in
                for (delivery, letter) in letters where filter.matches(letter, regex: regex) {
                    try await connection.ack(delivery)
                    removed.append(letter)
                }
            }
        }
        return removed
    }

    // MARK: Internals

    private func connect() async throws -> AMQPConnection {
        do {
            return try await AMQPConnection.connect(configuration: amqp)
        } catch let error as AMQPError {
            throw DeadLetterError("cannot reach RabbitMQ at \(amqp.host):\(amqp.port): \(error.message)")
        }
    }

    /// Fetches every message of `queue` unacknowledged, lets `body` ack some, and puts the
    /// rest back in place.
    private func browse(_ queue: String, _ body: ([(AMQPDelivery, DeadLetter)], AMQPConnection) async throws -> Void) async throws {
        let connection = try await connect()
        do {
            var fetched: [(AMQPDelivery, DeadLetter)] = []
            do {
                while fetched.count < Self.scanLimit, let delivery = try await connection.get(queue: queue) {
                    fetched.append((delivery, letter(delivery, queue: queue)))
                }
            } catch let error as AMQPError where error.replyCode == 404 {
                await connection.close()
                return  // the queue does not exist yet: nothing dead-lettered
            }
            try await body(fetched, connection)
            try await connection.requeueAll()
            await connection.close()
        } catch {
            await connection.close()  // closing requeues whatever was not acked
            throw error
        }
    }

    private func replayCopy(of delivery: AMQPDelivery, from queue: String, replayCount: Int) -> AMQPOutgoingMessage {
        var properties = delivery.properties
        for header in DeadLetterHeader.failureHeaders { properties.headers.removeValue(forKey: header) }
        properties.headers[DeadLetterHeader.replayCount] = .int(Int64(replayCount))
        properties.headers[DeadLetterHeader.replayedAt] = .string(DeadLetterHeader.timestamp())
        properties.persistent = true
        // Back to the work queue it came from, not through the topic exchange: other
        // consumers of the event already handled it.
        let workQueue = String(queue.dropLast(".dlq".count))
        return AMQPOutgoingMessage(exchange: "", routingKey: workQueue, body: delivery.body, properties: properties, mandatory: true)
    }

    private func compile(_ pattern: String?) throws -> NSRegularExpression? {
        guard let pattern else { return nil }
        do {
            return try NSRegularExpression(pattern: pattern, options: [.caseInsensitive])
        } catch {
            throw DeadLetterError("--error is not a valid regular expression: \(pattern)")
        }
    }

    func letter(_ delivery: AMQPDelivery, queue: String, now: Date = Date()) -> DeadLetter {
        let headers = delivery.properties.headers
        func text(_ key: String) -> String? { headers[key]?.stringValue }
        func date(_ key: String) -> Date? {
            guard let value = text(key) else { return nil }
            return (try? Date(value, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true))) ?? (try? Date(value, strategy: .iso8601))
        }
        // A message the broker dead-lettered itself (delivery limit) carries only x-death.
        var error = text(DeadLetterHeader.error)
        var deathTime: Date?
        if case .array(let deaths)? = headers["x-death"], case .table(let first)? = deaths.first {
            if error == nil {
                error = "dead-lettered by the broker: \(first["reason"]?.description ?? "unknown") (the worker crashed or never acknowledged it)"
            }
            if let seconds = first["time"]?.intValue { deathTime = Date(timeIntervalSince1970: Double(seconds)) }
        }
        let last = date(DeadLetterHeader.lastFailureAt) ?? deathTime ?? delivery.properties.timestamp ?? now
        let bodyText = String(decoding: delivery.body, as: UTF8.self)
        let bodyOrderId = (try? JSONSerialization.jsonObject(with: Data(delivery.body)) as? [String: Any])?["order_id"] as? String
        return DeadLetter(
            queue: queue, messageId: delivery.properties.messageID ?? "-", type: delivery.properties.type,
            orderId: text("order_id") ?? bodyOrderId, error: error ?? "unknown", errorClass: text(DeadLetterHeader.errorClass),
            attempts: Int(headers[DeadLetterHeader.attempts]?.intValue ?? headers["x-delivery-count"]?.intValue ?? 0),
            consumer: text(DeadLetterHeader.consumer), originalExchange: text(DeadLetterHeader.originalExchange),
            originalRoutingKey: text(DeadLetterHeader.originalRoutingKey), firstFailureAt: date(DeadLetterHeader.firstFailureAt),
            lastFailureAt: last, replayCount: Int(headers[DeadLetterHeader.replayCount]?.intValue ?? 0),
            ageSeconds: max(0, Int(now.timeIntervalSince(last))), headers: headers.mapValues(\.description), body: bodyText)
    }
}

func seconds(_ duration: Duration) -> Double {
    duration.secondsWithFraction
}

/// Parses `90`, `30s`, `5m`, `2h` or `1d`.
package func parseDuration(_ text: String) -> Duration? {
    let units: [Character: Int] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
    if let value = Int(text), value >= 0 { return .seconds(value) }
    guard let unit = text.last, let factor = units[unit], let value = Int(text.dropLast()), value >= 0 else { return nil }
    return .seconds(value * factor)
}
