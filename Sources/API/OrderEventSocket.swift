import Domain
import Foundation
import HTTPTypes
import HummingbirdWebSocket
import Logging
import Messaging
import Postgres
import Store

/// `GET /api/v1/orders/{id}/events/ws`: the order event stream of ``OrderEventsController``
/// over a WebSocket, for API clients that prefer one. The upgrade request authenticates like
/// any API call (`Authorization: Bearer`); only the order's owner (or an ADMIN) is upgraded,
/// anyone else falls through to the route, which answers 401 or 404 as for the SSE stream
/// (and 426 to a plain GET). Text messages carry JSON: first `{"event": "status", ...}`, then
/// `{"event": "change", "id": n, ...}` per event; the server closes the socket (1000) once
/// the order is settled. `?last_event_id=n` resumes after event `n`.
struct OrderEventSocket: Sendable {
    let pool: PostgresPool
    let feed: EventFanOut
    let tokens: TokenService
    let accounts: AccountDirectory
    private let orders = OrderStore()

    /// The order id in `/api/v1/orders/{id}/events/ws`, and the `last_event_id` query value.
    static func target(_ path: String) -> (orderId: UUID, lastEventID: Int?)? {
        let parts = path.split(separator: "?", maxSplits: 1)
        let segments = parts[0].split(separator: "/")
        guard segments.count == 6, segments[0] == "api", segments[1] == "v1", segments[2] == "orders", segments[4] == "events", segments[5] == "ws",
            let id = UUID(uuidString: String(segments[3]))
        else { return nil }
        var last: Int?
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") where pair.hasPrefix("last_event_id=") {
                // A malformed one is not upgraded: the route answers 422.
                guard let id = OrderEventsController.eventID(pair.dropFirst("last_event_id=".count)), id <= 999_999_999_999 else { return nil }
                last = id
            }
        }
        return (id, last)
    }

    /// Upgrades the owner's (or an admin's) request for an existing order; anything else is
    /// left to the router.
    func shouldUpgrade(_ request: HTTPRequest, logger: Logger) async -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        guard let path = request.path, let (orderId, last) = Self.target(path),
            let token = BearerToken.from(request.headerFields[.authorization]), let verified = await tokens.verify(token),
            let identity = try? await AuthMiddleware.current(verified, accounts: accounts),
            (try? await pool.withConnection({ try await orders.ownerAndTrace(orderId, owner: identity.role.isAdmin ? nil : identity.userId, on: $0) }))
                != nil
        else { return .dontUpgrade }
        return .upgrade([:]) { _, outbound, _ in
            try await stream(orderId, after: last, to: outbound)
        }
    }

    private func stream(_ orderId: UUID, after last: Int?, to outbound: WebSocketOutboundWriter) async throws {
        guard let items = try await OrderWatch(pool: pool, feed: feed).open(orderId, after: last) else { return }
        for await item in items {
            switch item {
            case .status(let status):
                try await outbound.write(.text(Self.json(["event": "status", "order_id": orderId.uuidString.lowercased(), "status": status.rawValue])))
            case .change(let event):
                try await outbound.write(.text(Self.message(event)))
            }
        }
    }

    static func message(_ event: LiveEvent) -> String {
        var fields: [String: Any] = [
            "event": "change", "id": event.sequence, "type": event.type, "occurred_at": ISO8601DateFormatter().string(from: event.occurredAt),
        ]
        if let orderId = event.orderId { fields["order_id"] = orderId.uuidString.lowercased() }
        if let status = event.status { fields["status"] = status }
        return json(fields)
    }

    static func json(_ fields: [String: Any]) -> String {
        (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
