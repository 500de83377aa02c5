import Domain
import Foundation
import Hummingbird
import Store

/// The customer's orders: history, and an order's page with its lines, totals, address,
/// status timeline, refunds and cancellation while it is allowed. The page listens to the
/// order's event stream (the API's, with the cookie session) and re-renders its status part
/// as the order moves; without JavaScript a reload shows the same.
struct ShopOrderPages: Sendable {
    let controller: StorefrontController
    private var shop: StorefrontDependencies { controller.shop }
    static let pageSize = 20

    func register(on router: Router<AppRequestContext>) {
        router.get("orders") { request, context in try await controller.guarded(request, context, signedIn: true, handler: list) }
        router.get("orders/:id") { request, context in try await controller.guarded(request, context, signedIn: true, handler: order) }
        router.get("orders/:id/events") { request, context in try await controller.guarded(request, context, signedIn: true, handler: events) }
        router.post("orders/:id/cancel") { request, context in try await controller.guarded(request, context, signedIn: true, handler: cancel) }
    }

    private func list(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        let page = ListPage(request.uri.queryParameters, size: Self.pageSize)
        let found = try await shop.pool.withConnection { try await OrderStore().page(of: viewer.userId, size: page.size, offset: page.offset, on: $0) }
        var values = await controller.base(viewer, title: "Your orders", request: request)
        values["orders"] = found.orders.map {
            [
                "id": $0.id.uuidString.lowercased(), "number": $0.orderNumber, "status": $0.status, "total": ConsoleFormat.money($0.totalCents, $0.currency),
                "date": ConsoleFormat.date($0.createdAt), "items": $0.items.reduce(0) { $0 + $1.quantity },
            ] as [String: Any]
        }
        values["empty"] = found.orders.isEmpty
        // Newest first: the previous page holds newer orders.
        values.addPager(page.pagerValues(path: "/orders", total: found.total, labels: ("← Newer", "Older →")))
        return try controller.pages.page("orders", values)
    }

    private func order(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        let id = try context.parameters.requireUUID("id", "order")
        // Another customer's order is indistinguishable from a missing one.
        guard let order = try await shop.pool.withConnection({ try await OrderStore().order(id, visibleTo: viewer.userId, on: $0) }) else {
            throw APIError.notFound("order")
        }
        let refunds = try await shop.pool.withConnection { try await PaymentStore().refunds(ofOrder: id, on: $0) }
        let money = { (cents: Int) in ConsoleFormat.money(cents, order.currency) }
        let status = OrderStatus(rawValue: order.status)
        var values = await controller.base(viewer, title: "Order \(order.orderNumber)", request: request)
        values.merge([
            "id": id.uuidString.lowercased(), "number": order.orderNumber, "status": order.status, "date": ConsoleFormat.date(order.createdAt),
            "status_text": Self.explain(status, reason: order.cancellationReason), "settled": status?.isTerminal ?? true,
            "timeline": order.statusHistory.map {
                ["status": $0.toStatus, "text": Self.explain(OrderStatus(rawValue: $0.toStatus), reason: $0.reason), "at": ConsoleFormat.date($0.changedAt)]
            },
            "refunds": refunds.map { ["amount": money($0.amountCents), "status": $0.status, "date": ConsoleFormat.date($0.createdAt)] },
            "can_cancel": status?.allowedNext.contains(.cancelled) ?? false,
        ]) { _, new in new }
        if case .stripe = shop.cards, order.paymentMethod == PaymentIds.manualMethod, status == .awaitingPayment {
            values["pay_url"] = "/orders/\(id.uuidString.lowercased())/pay"
        }
        values.merge(ConsoleFormat.orderBasics(order)) { _, new in new }
        return try controller.pages.page(request.uri.queryParameters.get("fragment") == "live" ? "order-live" : "order", values)
    }

    /// A status in the customer's words.
    static func explain(_ status: OrderStatus?, reason: String?) -> String {
        switch status {
        case .pending: "Placed: we are reserving your items."
        case .awaitingPayment: "Items reserved: waiting for the payment."
        case .confirmed: "Confirmed: paid, and being prepared."
        case .shipped: "Shipped: on its way."
        case .delivered: "Delivered."
        case .partiallyRefunded: "Partly refunded."
        case .refunded: "Refunded."
        case .cancelled:
            switch reason {
            case "payment_failed": "Cancelled: the payment was declined. Nothing was charged."
            case "out_of_stock": "Cancelled: an item was out of stock. Nothing was charged."
            case "expired": "Cancelled: the payment did not arrive in time."
            default: "Cancelled."
            }
        case nil: "Unknown."
        }
    }

    private func events(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        let id = try context.parameters.requireUUID("id", "order")
        return try await OrderEventsController(pool: shop.pool, feed: shop.feed).stream(id, owner: viewer.userId, lastEventID: LiveStream.lastEventID(request))
    }

    private func cancel(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        let id = try context.parameters.requireUUID("id", "order")
        try await shop.operations.cancel(id, by: Identity(userId: viewer.userId, role: .customer), log: context.logger)
        return ConsolePages.redirect("/orders/\(id.uuidString.lowercased())")
    }
}
