import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Messaging
import Postgres
import Store

/// `GET /api/v1/orders/{id}/events`: an order's status changes as Server-Sent Events, for
/// its owner (or an ADMIN). The stream opens with the order's status as it is now (event
/// `status`), then one `change` event per event of the order as the saga moves it, each with
/// the fan-out's sequence as its id; it ends once the order reaches a state the saga leaves
/// alone (CONFIRMED, CANCELLED or later). A client that reconnects with `Last-Event-ID` first
/// gets the events it missed that this process still holds. When the process's feed may have
/// missed an event, another `status` event says the status read again (see ``OrderWatch``).
struct OrderEventsController: Sendable {
    let pool: PostgresPool
    let watch: OrderWatch
    private let orders = OrderStore()

    init(pool: PostgresPool, feed: EventFanOut) {
        self.pool = pool
        watch = OrderWatch(pool: pool, feed: feed)
    }

    func register(on group: RouterGroup<AppRequestContext>) {
        group.get("orders/:id/events") { request, context in try await events(request, context) }
        // The WebSocket twin (``OrderEventSocket``) upgrades before routing; a request that
        // reaches this route was not upgraded: 404 for someone else's order, else 426.
        group.get("orders/:id/events/ws") { request, context -> Response in
            let identity = try context.requireIdentity()
            let id = try context.parameters.requireUUID("id", "order")
            if let last = request.uri.queryParameters.get("last_event_id"), Self.eventID(last).map({ $0 <= 999_999_999_999 }) != true {
                throw APIError.invalid([("last_event_id", "must be an event id from 0 to 999999999999")])
            }
            guard try await pool.withConnection({ try await orders.ownerAndTrace(id, owner: identity.role.isAdmin ? nil : identity.userId, on: $0) }) != nil
            else { throw APIError.notFound("order") }
            throw APIError(status: .upgradeRequired, detail: "this is a WebSocket endpoint: send a WebSocket upgrade request", headers: [.upgrade: "websocket"])
        }
    }

    /// The SSE frame of an order's current status (no id: it is not an event of the feed).
    static func statusFrame(orderId: UUID, status: OrderStatus) -> String {
        #"event: status\#ndata: {"order_id":"\#(orderId.uuidString.lowercased())","status":"\#(status.rawValue)"}\#n\#n"#
    }

    private func events(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let id = try context.parameters.requireUUID("id", "order")
        let last = request.headers[HTTPField.Name("Last-Event-ID")!]
        if let last, Self.eventID(last) == nil { throw APIError.invalid([("Last-Event-ID", "must be an event id: 1 to 18 digits")]) }
        return try await stream(id, owner: identity.role.isAdmin ? nil : identity.userId, lastEventID: last.flatMap(Self.eventID))
    }

    /// An event id as a client sends it back: 1 to 18 digits.
    static func eventID(_ text: some StringProtocol) -> Int? {
        guard (1...18).contains(text.count), text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(text)
    }

    /// The SSE response for order `id` when `owner` (nil: anyone's) owns it; 404 otherwise.
    /// The storefront's order page listens to the same stream with its cookie session.
    func stream(_ id: UUID, owner: UUID?, lastEventID: Int?) async throws -> Response {
        // Another user's order is indistinguishable from a missing one.
        guard try await pool.withConnection({ try await orders.ownerAndTrace(id, owner: owner, on: $0) }) != nil else { throw APIError.notFound("order") }
        guard let items = try await watch.open(id, after: lastEventID) else { throw APIError.notFound("order") }
        return LiveStream.response(
            frames: items.map { item in
                switch item {
                case .status(let status): Self.statusFrame(orderId: id, status: status)
                case .change(let event): LiveStream.frame(event)
                }
            })
    }
}
