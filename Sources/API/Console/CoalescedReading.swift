import Synchronization

/// A reading that callers share: every caller gets a value read after it asked, reads run one
/// at a time and start at most once per `gap`.
///
/// The console's overview re-reads its figures whenever an event arrives, up to once a second
/// in each open tab; a reading opens a broker connection and counts every order by status.
/// With this, all the tabs of one API process share one reading a second, however many there
/// are. A caller joins the reading that has not started yet, or queues one: it never gets a
/// value read before it asked, so the event that made it ask is in what it shows.
final class CoalescedReading<Value: Sendable>: Sendable {
    private struct State {
        /// The reading that will start next; whoever asks now shares it.
        var waiting: Task<Value, Never>?
        /// The last reading queued, which the next one waits for.
        var latest: Task<Value, Never>?
        /// When the last reading started.
        var lastStart: ContinuousClock.Instant?
        /// Calls of ``value()`` so far.
        var asked = 0
    }

    private let gap: Duration
    private let read: @Sendable () async -> Value
    private let state = Mutex(State())

    /// Shares `read` between callers, starting it at most once per `gap`. `read` must bound its
    /// own waits on peers: callers wait for it.
    init(gap: Duration = .seconds(1), _ read: @escaping @Sendable () async -> Value) {
        self.gap = gap
        self.read = read
    }

    /// How many times ``value()`` was called: a test waits on it to know its callers asked.
    var asked: Int { state.withLock { $0.asked } }

    /// A value read after this call began.
    func value() async -> Value {
        let task = state.withLock { current -> Task<Value, Never> in
            current.asked += 1
            if let waiting = current.waiting { return waiting }
            let previous = current.latest
            let task = Task { [gap, read, self] in
                _ = await previous?.value
                let earliest = state.withLock { $0.lastStart.map { $0 + gap } }
                if let earliest, earliest > .now { try? await Task.sleep(until: earliest, clock: .continuous) }
                // From here on a caller queues the next reading: this one may miss what it asks about.
                state.withLock { current in
                    current.waiting = nil
                    current.lastStart = .now
                }
                return await read()
            }
            current.waiting = task
            current.latest = task
            return task
        }
        return await task.value
    }
}
