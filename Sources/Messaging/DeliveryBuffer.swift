import AMQP
import Synchronization

/// Deliveries received but not yet taken by a batch runner.
///
/// A runner that finds deliveries waiting takes up to a batch of them at once; one that finds
/// none waits for the next. So batches grow when deliveries arrive faster than the runners
/// finish (under load, where one commit for many messages pays).
///
/// With a `batchWait`, a short batch of deliveries that may wait is held until its oldest
/// has waited that long (or the batch is full), so that deliveries arriving one at a time
/// still share a transaction, a commit and an ack. Only deliveries nobody waits on may wait
/// (``EventHandler/mayWait(_:)``): a batch holding any other is handed out at once, since on
/// the saga's path every step would wait that much longer.
final class DeliveryBuffer: Sendable {
    private typealias Runner = CheckedContinuation<[AMQPDelivery]?, Never>

    private struct State {
        var waiting: [(delivery: AMQPDelivery, arrived: ContinuousClock.Instant, urgent: Bool)] = []
        /// Waiting deliveries that may not wait: while there are any, a batch is ready.
        var urgent = 0
        var runners: [Runner] = []
        var finished = false
        /// A timer will hand out the short batch when its oldest delivery has waited `batchWait`.
        var timerSet = false
    }

    private let state = Mutex(State())
    private let batchSize: Int
    private let batchWait: Duration
    private let mayWait: @Sendable (AMQPDelivery) -> Bool

    /// A buffer handing out batches of at most `batchSize`; a short one at once, or, when
    /// every delivery in it `mayWait`, once its oldest has waited `batchWait`.
    init(batchSize: Int, batchWait: Duration = .zero, mayWait: @escaping @Sendable (AMQPDelivery) -> Bool = { _ in false }) {
        self.batchSize = max(1, batchSize)
        self.batchWait = max(.zero, batchWait)
        if batchWait > .zero { self.mayWait = mayWait } else { self.mayWait = { _ in false } }
    }

    /// Hands `delivery` to a waiting runner when a batch is ready, or keeps it.
    func push(_ delivery: AMQPDelivery) {
        let urgent = !mayWait(delivery)
        let (handouts, timer) = state.withLock { state in
            state.waiting.append((delivery, .now, urgent))
            if urgent { state.urgent += 1 }
            return handOut(&state)
        }
        deliver(handouts, timer: timer)
    }

    /// No more deliveries come: runners take what is left at once, then get nil.
    func finish() {
        let (handouts, _) = state.withLock { state in
            state.finished = true
            return handOut(&state)
        }
        deliver(handouts, timer: nil)
    }

    /// Up to a batch of waiting deliveries in arrival order, waiting until a batch is ready;
    /// nil once finished and empty.
    func take() async -> [AMQPDelivery]? {
        await withCheckedContinuation { continuation in
            let (handouts, timer) = state.withLock { state in
                state.runners.append(continuation)
                return handOut(&state)
            }
            deliver(handouts, timer: timer)
        }
    }

    /// Pairs waiting runners with ready batches (a full one, one holding a delivery that may
    /// not wait, one whose oldest delivery has waited `batchWait`, or anything once finished)
    /// and says when to look again if a short batch is left waiting and no timer is set.
    /// Runs under the lock.
    private func handOut(_ state: inout State) -> (handouts: [(Runner, [AMQPDelivery]?)], timer: ContinuousClock.Instant?) {
        var handouts: [(Runner, [AMQPDelivery]?)] = []
        let now = ContinuousClock.now
        while !state.runners.isEmpty, let oldest = state.waiting.first,
            state.finished || state.urgent > 0 || state.waiting.count >= batchSize || oldest.arrived + batchWait <= now
        {
            let count = min(batchSize, state.waiting.count)
            let batch = state.waiting.prefix(count)
            state.urgent -= batch.count(where: \.urgent)
            handouts.append((state.runners.removeFirst(), batch.map(\.delivery)))
            state.waiting.removeFirst(count)
        }
        if state.finished, state.waiting.isEmpty {
            handouts += state.runners.map { ($0, nil) }
            state.runners.removeAll()
        }
        guard !state.runners.isEmpty, let oldest = state.waiting.first, !state.timerSet else { return (handouts, nil) }
        state.timerSet = true
        return (handouts, oldest.arrived + batchWait)
    }

    /// Resumes runners outside the lock, and sets the timer `handOut` asked for.
    private func deliver(_ handouts: [(Runner, [AMQPDelivery]?)], timer: ContinuousClock.Instant?) {
        for (runner, batch) in handouts { runner.resume(returning: batch) }
        guard let deadline = timer else { return }
        Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            let (handouts, timer) = state.withLock { state in
                state.timerSet = false
                return handOut(&state)
            }
            deliver(handouts, timer: timer)
        }
    }
}
