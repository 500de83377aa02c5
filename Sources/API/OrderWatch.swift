import Domain
import Foundation
import Messaging
import Postgres
import Store
import Synchronization

/// What an order's live stream says, in order.
enum OrderStreamItem: Sendable {
    /// The order's status as read from the database: first, and again whenever the feed may
    /// have missed one of the order's events and the status read then differs.
    case status(OrderStatus)
    /// One of the order's events, from the feed.
    case change(LiveEvent)
}

/// An order's live stream, shared by the SSE route, its WebSocket twin and the storefront's
/// order page: the status now, then the order's events as the saga moves it, ending after the
/// one that settles it (CONFIRMED, CANCELLED or later).
///
/// The feed can miss events: it connects on the process's first live page and may take a
/// while on a loaded broker, and a reconnect loses what passed while it was down (its queue
/// is exclusive to the connection). A stream that waited for a missed `order.confirmed` would
/// never end, so whenever the feed is on another connection than the stream began with, the
/// stream reads the status again and says it if it changed (ending there when it settled);
/// while the feed is not connected at all, it reads the status every two seconds.
struct OrderWatch: Sendable {
    let pool: PostgresPool
    let feed: EventFanOut
    private let orders = OrderStore()
    /// How long a stream waits for the process's feed to connect before it opens anyway.
    static let connectWait: Duration = .seconds(2)
    /// How often a stream checks whether the feed is on another connection.
    static let connectionCheck: Duration = .milliseconds(500)
    /// How often a stream reads the status while the feed is not connected.
    static let pollWhileDisconnected: Duration = .seconds(2)

    init(pool: PostgresPool, feed: EventFanOut) {
        self.pool = pool
        self.feed = feed
    }

    /// The stream of order `id` (whose owner the caller checked) after the feed's event
    /// `lastEventID`; nil when the order does not exist. Cancelled when its reader stops.
    func open(_ id: UUID, after lastEventID: Int?) async throws -> AsyncStream<OrderStreamItem>? {
        // Subscribed (on a connected feed if it connects in time) before the status is read,
        // so no change falls between the two. With the broker down the stream still opens.
        _ = await feed.connected(within: Self.connectWait)
        guard let watch = try await feed.subscribe(after: lastEventID, thenRead: { try await readStatus(id) }) else { return nil }
        let (items, output) = AsyncStream.makeStream(of: OrderStreamItem.self, bufferingPolicy: .bufferingNewest(EventFanOut.subscriberBuffer))
        let task = Task {
            await follow(id, watch, into: Announcer(output, opening: watch.value))
            output.finish()
        }
        output.onTermination = { _ in task.cancel() }
        return items
    }

    private func readStatus(_ id: UUID) async throws -> OrderStatus? {
        try await pool.withConnection { try await orders.status(of: id, on: $0) }
    }

    private func follow(_ id: UUID, _ watch: EventFanOut.Watch<OrderStatus>, into announcer: Announcer) async {
        for event in watch.missed where event.orderId == id {
            if announcer.say(.change(event)) { return }
        }
        if watch.value.isTerminal { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in watch.events where event.orderId == id {
                    if announcer.say(.change(event)) { return }
                }
            }
            group.addTask {
                var known = watch.connection
                var lastRead = ContinuousClock.now
                while !Task.isCancelled, !announcer.ended {
                    try? await Task.sleep(for: Self.connectionCheck)
                    let now = feed.connection
                    // Not connected: nothing arrives, so the status is polled meanwhile. On
                    // another connection: events may have passed unseen, so it is read once,
                    // after the feed is on `now` (a change after the read arrives as an event).
                    let due = now == nil ? ContinuousClock.now - lastRead >= Self.pollWhileDisconnected : now != known
                    // A failed read is tried again at the next check.
                    guard due, let status = try? await readStatus(id) else { continue }
                    known = now
                    lastRead = .now
                    if status != announcer.announced, announcer.say(.status(status)) { return }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Yields a stream's items one at a time and remembers the last status it announced, so
    /// the event reader and the connection check never both end the stream.
    private final class Announcer: Sendable {
        private let output: AsyncStream<OrderStreamItem>.Continuation
        private let state: Mutex<(announced: OrderStatus, ended: Bool)>

        init(_ output: AsyncStream<OrderStreamItem>.Continuation, opening status: OrderStatus) {
            self.output = output
            // Not ended even when settled: the missed events the client asked for come first.
            state = Mutex((status, false))
            output.yield(.status(status))
        }

        var announced: OrderStatus { state.withLock { $0.announced } }
        var ended: Bool { state.withLock { $0.ended } }

        /// Yields `item` unless the stream has ended; whether the stream has ended after it.
        func say(_ item: OrderStreamItem) -> Bool {
            state.withLock { state in
                guard !state.ended else { return true }
                output.yield(item)
                let status: OrderStatus? =
                    switch item {
                    case .status(let status): status
                    case .change(let event): event.status.flatMap(OrderStatus.init(rawValue:))
                    }
                if let status {
                    state.announced = status
                    state.ended = status.isTerminal
                }
                return state.ended
            }
        }
    }
}
