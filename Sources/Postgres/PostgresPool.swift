import Logging
import Metrics
import Synchronization

/// A bounded pool of ``PostgresConnection``s.
///
/// At most `maxConnections` sessions are open; callers beyond that wait in order until one is
/// released or `acquireTimeout` passes (then `poolTimeout`). A session found broken, on
/// release or before reuse, is closed and replaced by a new one, so after a server restart or
/// `pg_terminate_backend` the next caller gets a fresh session.
public final class PostgresPool: Sendable {
    /// Counts for monitoring.
    public struct Statistics: Sendable {
        /// Sessions open or being opened.
        public var open: Int
        /// Sessions idle in the pool.
        public var idle: Int
        /// Callers waiting for a session.
        public var waiting: Int
    }

    /// What an acquirer receives: a session to reuse, or the right to open a new one.
    private enum Lease: Sendable {
        case reuse(PostgresConnection)
        case open
    }

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<Lease, any Error>
        var timeout: Task<Void, Never>?
    }

    private struct State {
        var idle: [PostgresConnection] = []
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var closed = false
    }

    /// The configuration new sessions are opened with.
    public let configuration: PostgresConfiguration
    /// The most sessions open at once.
    public let maxConnections: Int
    /// How long a caller waits for a session before `poolTimeout`.
    public let acquireTimeout: Duration
    private let state = Mutex(State())
    private let logger: Logger
    /// `db_pool_connections_in_use{pool}` and `db_pool_waiters{pool}`.
    private let inUseGauge: Gauge
    private let waitersGauge: Gauge

    /// Creates an empty pool; sessions are opened on demand. `metricsName` labels its gauges.
    public init(
        configuration: PostgresConfiguration, maxConnections: Int = 10,
        acquireTimeout: Duration = .seconds(5), logger: Logger = Logger(label: "emporium.postgres.pool"), metricsName: String = "main"
    ) {
        precondition(maxConnections > 0, "a pool needs at least one connection")
        self.configuration = configuration
        self.maxConnections = maxConnections
        self.acquireTimeout = acquireTimeout
        self.logger = logger
        inUseGauge = Gauge(label: "db_pool_connections_in_use", dimensions: [("pool", metricsName)])
        waitersGauge = Gauge(label: "db_pool_waiters", dimensions: [("pool", metricsName)])
    }

    private func reportStatistics() {
        let current = statistics
        inUseGauge.record(current.open - current.idle)
        waitersGauge.record(current.waiting)
    }

    /// Lends a session to `body` and takes it back afterwards, whatever `body` does.
    ///
    /// `body` runs on the session's own thread (``PostgresConnection/executor``), where its
    /// statements run: a transaction of several statements switches threads once on the way
    /// in and once on the way out, instead of twice per statement. On two busy cores every
    /// switch is a wait in the run queue. A reused session is checked there too, before
    /// `body`, and replaced if the server has dropped it.
    @discardableResult
    public func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let (lease, budget) = try await leaseWithBudget()
        reportStatistics()
        defer { reportStatistics() }
        let connection: PostgresConnection
        switch lease {
        case .reuse(let pooled):
            let outcome: Checked<T>
            do {
                outcome = try await withTaskExecutorPreference(pooled.executor) {
                    guard await pooled.isUsable() else { return .stale }
                    return .done(try await body(pooled))
                }
            } catch {
                await release(pooled)
                throw error
            }
            if case .done(let value) = outcome {
                await release(pooled)
                return value
            }
            logger.debug("replacing a broken pooled connection", metadata: ["db.backend_pid": "\(pooled.backendPID)"])
            await pooled.close()
            // The slot is ours; open a replacement in it.
            connection = try await openInSlot(budget: budget)
        case .open:
            connection = try await openInSlot(budget: budget)
        }
        do {
            let value = try await withTaskExecutorPreference(connection.executor) { try await body(connection) }
            await release(connection)
            return value
        } catch {
            await release(connection)
            throw error
        }
    }

    /// What a reused session's check and `body` came to: `body`'s value, or the session
    /// found dropped before `body` ran.
    private enum Checked<T> {
        case done(T)
        case stale
    }

    /// Runs `body` in a transaction on a pooled session; rolls back if it throws.
    @discardableResult
    public func withTransaction<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await withConnection { try await $0.transaction(body) }
    }

    /// Runs one statement on a pooled session.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws -> PostgresRows {
        try await withConnection { try await $0.query(sql, parameters) }
    }

    /// Current counts.
    public var statistics: Statistics {
        state.withLock { Statistics(open: $0.open, idle: $0.idle.count, waiting: $0.waiters.count) }
    }

    /// Closes idle sessions and fails waiters; later acquires throw `poolClosed`.
    public func close() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            defer {
                state.open -= state.idle.count
                state.idle = []
                state.waiters = []
            }
            return (state.idle, state.waiters)
        }
        for waiter in waiters {
            waiter.timeout?.cancel()
            waiter.continuation.resume(throwing: PostgresError(code: .poolClosed, message: "the pool is closed"))
        }
        for connection in idle { await connection.close() }
    }

    // MARK: Acquire and release

    /// A slot within `acquireTimeout` (an idle session to reuse, or room to open one), and
    /// how long opening a session in it may take: a caller that had to wait for a free slot
    /// opens a new session within what is left of that deadline, so waiting and connecting
    /// together stay bounded even when the server hangs; one that got a slot at once has the
    /// whole connect timeout.
    private func leaseWithBudget() async throws -> (Lease, Duration) {
        let started = ContinuousClock.now
        let lease = try await lease()
        let waited = ContinuousClock.now - started > .milliseconds(50)
        let budget = waited ? min(configuration.connectTimeout, max(started + acquireTimeout - .now, Self.minimumConnectBudget)) : configuration.connectTimeout
        return (lease, budget)
    }

    /// The least time a caller that waited for its slot gets to open a session: a real
    /// attempt, even at the end of its acquire deadline.
    static let minimumConnectBudget: Duration = .seconds(1)

    /// Opens a session in a slot already counted in `open`; gives the slot back on failure.
    private func openInSlot(budget: Duration) async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(configuration: configuration, timeout: budget, logger: logger)
        } catch {
            handBackSlot()
            throw error
        }
    }

    private func lease() async throws -> Lease {
        let waiterID = state.withLock { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Lease, any Error>) in
                enum Immediate { case lease(Lease), closed, wait }
                let immediate = state.withLock { state -> Immediate in
                    if state.closed { return .closed }
                    if let connection = state.idle.popLast() { return .lease(.reuse(connection)) }
                    if state.open < maxConnections {
                        state.open += 1
                        return .lease(.open)
                    }
                    state.waiters.append(Waiter(id: waiterID, continuation: continuation))
                    return .wait
                }
                if case .wait = immediate { reportStatistics() }
                switch immediate {
                case .lease(let lease):
                    continuation.resume(returning: lease)
                case .closed:
                    continuation.resume(throwing: PostgresError(code: .poolClosed, message: "the pool is closed"))
                case .wait:
                    let timeout = acquireTimeout
                    let task = Task { [weak self] in
                        try? await Task.sleep(for: timeout)
                        guard !Task.isCancelled else { return }
                        self?.failWaiter(
                            waiterID,
                            PostgresError(
                                code: .poolTimeout,
                                message: "no database connection became free within \(timeout) (pool size \(self?.maxConnections ?? 0))"))
                    }
                    let stored = state.withLock { state -> Bool in
                        guard let index = state.waiters.firstIndex(where: { $0.id == waiterID }) else { return false }
                        state.waiters[index].timeout = task
                        return true
                    }
                    if !stored { task.cancel() }
                }
            }
        } onCancel: {
            failWaiter(waiterID, CancellationError())
        }
    }

    private func failWaiter(_ id: Int, _ error: any Error) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.timeout?.cancel()
        waiter?.continuation.resume(throwing: error)
    }

    /// Returns a session: to the first waiter, to the idle list, or closed if broken.
    private func release(_ connection: PostgresConnection) async {
        let healthy = !connection.isBroken
        if !healthy { await connection.close() }
        enum Next { case resume(Waiter, Lease), done, closeIt }
        let next = state.withLock { state -> Next in
            if state.closed {
                state.open -= 1
                return healthy ? .closeIt : .done
            }
            if !state.waiters.isEmpty {
                return .resume(state.waiters.removeFirst(), healthy ? .reuse(connection) : .open)
            }
            if healthy {
                state.idle.append(connection)
            } else {
                state.open -= 1
            }
            return .done
        }
        switch next {
        case .resume(let waiter, let lease):
            waiter.timeout?.cancel()
            waiter.continuation.resume(returning: lease)
        case .closeIt:
            await connection.close()
        case .done:
            break
        }
    }

    /// A slot whose session failed to open: passes it to a waiter (who will try to open one)
    /// or frees it.
    private func handBackSlot() {
        let waiter = state.withLock { state -> Waiter? in
            if !state.closed, !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.open -= 1
            return nil
        }
        waiter?.timeout?.cancel()
        waiter?.continuation.resume(returning: .open)
    }
}
