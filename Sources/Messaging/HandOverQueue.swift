import Synchronization

/// Work handed from the tasks that commit to the one background loop that carries it out,
/// shared by the copies of an ``OutboxPublisher``: events committed and waiting to be
/// published (``CommittedEvents``), and ids published and waiting to be marked.
///
/// Bounded: past `limit` items, new ones are dropped, which is safe for both uses because
/// the outbox row, not this queue, is the promise (the relay's poll publishes an event
/// dropped here, and republishes one whose mark was dropped; inboxes skip the duplicate).
/// So a broker or database outage cannot grow memory without end.
final class HandOverQueue<Element: Sendable>: Sendable {
    private let pending = Mutex<[Element]>([])
    private let signal: AsyncStream<Void>.Continuation
    /// Yields after items were added (coalesced: one pending signal at most).
    let signals: AsyncStream<Void>
    let limit: Int

    init(limit: Int) {
        self.limit = limit
        (signals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func add(_ items: [Element]) {
        guard !items.isEmpty else { return }
        pending.withLock { pending in
            pending.append(contentsOf: items.prefix(max(0, limit - pending.count)))
        }
        signal.yield()
    }

    func take(max: Int) -> [Element] {
        pending.withLock { pending in
            let batch = Array(pending.prefix(max))
            pending.removeFirst(batch.count)
            return batch
        }
    }

    /// Ends ``signals``; the loop that reads them carries out what is left and returns.
    func finish() { signal.finish() }
}

/// Events committed by this process and waiting to be published.
typealias CommittedEvents = HandOverQueue<CommittedEvent>
