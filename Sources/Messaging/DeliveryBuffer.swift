import AMQP
import Synchronization

/// Deliveries received but not yet taken by a batch runner.
///
/// A runner that finds deliveries waiting takes up to its batch size of them at once; one
/// that finds none waits for the next. So batches grow only when deliveries arrive faster than
/// the runners finish (under load, where one commit for many messages pays), and a lone
/// message is never held back waiting for company.
final class DeliveryBuffer: Sendable {
    private struct State {
        var waiting: [AMQPDelivery] = []
        var runners: [CheckedContinuation<[AMQPDelivery]?, Never>] = []
        var finished = false
    }

    private let state = Mutex(State())

    /// Hands `delivery` to a waiting runner, or keeps it for the next one.
    func push(_ delivery: AMQPDelivery) {
        let runner = state.withLock { state -> CheckedContinuation<[AMQPDelivery]?, Never>? in
            if !state.runners.isEmpty { return state.runners.removeFirst() }
            state.waiting.append(delivery)
            return nil
        }
        runner?.resume(returning: [delivery])
    }

    /// No more deliveries come: runners take what is left, then get nil.
    func finish() {
        let runners = state.withLock { state -> [CheckedContinuation<[AMQPDelivery]?, Never>] in
            state.finished = true
            defer { state.runners.removeAll() }
            return state.runners
        }
        for runner in runners { runner.resume(returning: nil) }
    }

    /// Up to `limit` waiting deliveries in arrival order, waiting for one if there are none;
    /// nil once finished and empty.
    func take(upTo limit: Int) async -> [AMQPDelivery]? {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> [AMQPDelivery]?? in
                if !state.waiting.isEmpty {
                    let count = min(limit, state.waiting.count)
                    defer { state.waiting.removeFirst(count) }
                    return .some(Array(state.waiting.prefix(count)))
                }
                if state.finished { return .some(nil) }
                state.runners.append(continuation)
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
