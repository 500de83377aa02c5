import Foundation
import Hummingbird
import Logging
import OperatorTools
import Postgres
import Store

/// The overview: orders by status, orders per minute over the last hour, queues and their
/// consumers, dead letters, the outbox, and the readiness of PostgreSQL and RabbitMQ. The
/// figures are a fragment the page re-fetches when an event arrives (and every few seconds
/// when the live feed is down).
struct OverviewPages: Sendable {
    let controller: ConsoleController
    private var dependencies: ConsoleDependencies { controller.dependencies }

    func page(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        var values = controller.base(viewer, title: "Overview", section: "overview")
        values.merge(try await figures()) { _, new in new }
        return try controller.pages.page("overview", values)
    }

    func figures(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        try controller.pages.page("overview-figures", try await figures())
    }

    /// The overview's figures, from a reading taken after this call began (shared with the
    /// other overviews open on this process).
    func figures() async throws -> [String: Any] {
        let reading = await dependencies.overview.value()
        var values = Self.values(reading.status)
        values["chart"] = ConsoleFormat.barChart(reading.perMinute)
        values["orders_last_hour"] = reading.perMinute.reduce(0, +)
        values["live_connected"] = dependencies.feed.isConnected
        values["generated_at"] = ConsoleFormat.date(reading.at)
        return values
    }

    /// What the overview shows, read at one time.
    struct Reading: Sendable {
        /// Orders by status, queues, the outbox, and which server did not answer.
        let status: StatusReport
        /// Orders placed per minute over the last hour, oldest first; empty when PostgreSQL
        /// did not answer (the status report says so).
        let perMinute: [Int]
        /// When the reading was taken.
        let at: Date
    }

    /// Reads the overview's figures now.
    static func read(_ status: SystemStatus, pool: PostgresPool, logger: Logger) async -> Reading {
        let at = Date()
        let report = await status.collect()
        let perMinute: [Int]
        do {
            perMinute = try await ConsoleQueries().ordersPerMinute(minutes: 60, on: pool)
        } catch {
            perMinute = []
            logger.warning("overview: orders per minute unavailable", metadata: ["error": "\(error)"])
        }
        return Reading(status: report, perMinute: perMinute, at: at)
    }
}

extension OverviewPages {
    /// The status report as the overview template reads it.
    static func values(_ report: StatusReport) -> [String: Any] {
        let statuses = ["PENDING", "AWAITING_PAYMENT", "CONFIRMED", "SHIPPED", "DELIVERED", "PARTIALLY_REFUNDED", "REFUNDED", "CANCELLED"]
        var values: [String: Any] = [:]
        if let orders = report.orders {
            values["orders_by_status"] = statuses.map { ["status": $0, "count": orders[$0] ?? 0] }
            values["orders_total"] = orders.values.reduce(0, +)
        }
        values["queues"] = report.queues.map {
            [
                "role": $0.role, "queue": $0.queue, "ready": $0.ready.map(String.init) ?? "absent", "consumers": $0.consumers.map(String.init) ?? "absent",
                "dead_letters": $0.deadLetters ?? 0, "has_dead_letters": ($0.deadLetters ?? 0) > 0, "no_consumers": ($0.consumers ?? 0) == 0,
            ] as [String: Any]
        }
        values["dead_letters_total"] = report.queues.reduce(0) { $0 + ($1.deadLetters ?? 0) }
        if let outbox = report.outbox {
            values["outbox"] = ["unpublished": outbox.unpublished, "oldest": outbox.oldestAgeSeconds.map { "\($0) s" } ?? "none", "parked": outbox.parked]
        }
        values["postgres_ready"] = report.errors["postgres"] == nil
        values["rabbitmq_ready"] = report.errors["rabbitmq"] == nil
        values["errors"] = report.errors.sorted { $0.key < $1.key }.map { ["part": $0.key, "error": $0.value] }
        return values
    }
}
