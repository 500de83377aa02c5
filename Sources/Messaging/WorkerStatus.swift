import AMQP
import Foundation
import Synchronization

/// This process's name in the inbox and in health reports: `EMPORIUM_INSTANCE`, else
/// `hostname:pid` (in a container the hostname is the container's id).
public enum ProcessIdentity {
    /// The identity, computed once.
    public static let current: String = {
        if let name = ProcessInfo.processInfo.environment["EMPORIUM_INSTANCE"], !name.isEmpty { return name }
        return "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }()
}

/// What a running worker tells its health endpoint: whether it is subscribed to its queue,
/// and how many messages it has handled.
public final class WorkerStatus: Sendable {
    private struct State {
        var consumer: AMQPConsumer?
        var breaker: DependencyBreaker?
        var handled = 0
        var draining = false
    }

    private let state = Mutex(State())

    /// Creates an empty status (not subscribed yet).
    public init() {}

    /// Whether the worker's consumer is subscribed right now (false while reconnecting or draining).
    public var isConsuming: Bool { state.withLock { $0.consumer?.isConnected == true && !$0.draining } }
    /// Messages this process handled (applied or skipped as duplicates) since it started.
    public var handled: Int { state.withLock { $0.handled } }

    /// Why the worker holds its messages right now (its database is unavailable), or nil.
    public var pause: DependencyBreaker.Pause? { state.withLock { $0.breaker }?.pause }
    /// Whether the worker is draining for shutdown.
    public var isDraining: Bool { state.withLock { $0.draining } }

    func attach(_ consumer: AMQPConsumer) { state.withLock { $0.consumer = consumer } }
    func attach(_ breaker: DependencyBreaker) { state.withLock { $0.breaker = breaker } }
    func markDraining() { state.withLock { $0.draining = true } }
    func countHandled() { state.withLock { $0.handled += 1 } }
}
