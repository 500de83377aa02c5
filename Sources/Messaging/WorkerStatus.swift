import AMQP
import Foundation
import Synchronization

/// What a running worker tells its health endpoint: whether it is subscribed to its queue,
/// and how many messages it has handled.
package final class WorkerStatus: Sendable {
    private struct State {
        var consumer: AMQPConsumer?
        var breaker: DependencyBreaker?
        var handled = 0
        var draining = false
    }

    private let state = Mutex(State())

    /// Creates an empty status (not subscribed yet).
    package init() {}

    /// Whether the worker's consumer is subscribed right now (false while reconnecting or draining).
    package var isConsuming: Bool { state.withLock { $0.consumer?.isConnected == true && !$0.draining } }
    /// Messages this process handled (applied or skipped as duplicates) since it started.
    package var handled: Int { state.withLock { $0.handled } }

    /// Why the worker holds its messages right now (its database is unavailable), or nil.
    package var pause: DependencyBreaker.Pause? { state.withLock { $0.breaker }?.pause }
    /// Whether the worker is draining for shutdown.
    package var isDraining: Bool { state.withLock { $0.draining } }

    func attach(_ consumer: AMQPConsumer) { state.withLock { $0.consumer = consumer } }
    func attach(_ breaker: DependencyBreaker) { state.withLock { $0.breaker = breaker } }
    func markDraining() { state.withLock { $0.draining = true } }
    func countHandled() { state.withLock { $0.handled += 1 } }
}
