import Domain
import Metrics

/// The saga's metrics: `orders_finalized_total{status}` for outcomes and
/// `saga_step_seconds{step}` (time since placement) for its steps. Recorded where the step
/// happens, inside its transaction: a rollback, rare and retried, can count a step twice.
package enum SagaMetrics {
    /// An order reached `target` `ageSeconds` after it was placed.
    package static func reached(_ target: OrderStatus, ageSeconds: Double) {
        switch target {
        case .awaitingPayment: step("reserved", ageSeconds: ageSeconds)
        case .confirmed: step("confirmed", ageSeconds: ageSeconds)
        default: break
        }
        if [.confirmed, .cancelled, .delivered].contains(target) {
            Counter(label: "orders_finalized_total", dimensions: [("status", target.rawValue)]).increment()
        }
    }

    /// An order reached saga step `step` (`reserved`, `paid`, `confirmed`) `ageSeconds` after
    /// it was placed.
    package static func step(_ step: String, ageSeconds: Double) {
        Metrics.Timer(label: "saga_step_seconds", dimensions: [("step", step)]).recordNanoseconds(Int64(max(0, ageSeconds) * 1e9))
    }
}
