import Foundation
import Metrics
import Prometheus
import Units

/// The process's Prometheus registry behind swift-metrics, and what `GET /metrics` shows.
///
/// Metric names (all labels fixed per name, as Prometheus requires):
/// - `http_request_duration_seconds{route,method,status}` (API)
/// - `orders_placed_total` (API); `orders_finalized_total{status}`; `saga_step_seconds{step}`:
///   time from placement to `reserved`, `paid`, `confirmed`
/// - `messages_consumed_total`, `messages_duplicate_total` (consumed, already in the inbox,
///   skipped), `messages_acked_total`, `messages_retried_total`,
///   `messages_dead_lettered_total` `{queue,type}`; `message_handler_duration_seconds{queue,type}`
/// - `postgres_round_trips_total`: the process's sends to PostgreSQL that wait for an answer
/// - `outbox_unpublished`, `outbox_oldest_unpublished_age_seconds` (every 15 s)
/// - `amqp_publish_confirm_seconds`; `amqp_reconnects_total{client}`; `amqp_ack_frames_total`
/// - `db_pool_connections_in_use{pool}`, `db_pool_waiters{pool}`
package enum EmporiumMetrics {
    /// The registry `GET /metrics` renders.
    package static let registry = PrometheusCollectorRegistry()

    /// Routes swift-metrics into ``registry``. Call once per process, first thing (the
    /// executables do); without it metrics are no-ops.
    package static func bootstrap() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        MetricsSystem.bootstrap(factory)
    }

    /// The Prometheus text exposition of every metric so far.
    package static func render() -> String { registry.emitToString() }

    /// Seconds since `start`, for a swift-metrics `Timer`.
    package static func record(_ timer: Metrics.Timer, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        timer.recordNanoseconds(elapsed.wholeNanoseconds)
    }
}
