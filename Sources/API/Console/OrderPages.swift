import Domain
import Foundation
import Hummingbird
import OperatorTools
import Store

/// Orders: the filtered, paged list and one order's whole life (lines, totals, address, the
/// status timeline, reservations, payment and refunds, notifications, trace, dead letters,
/// the audit log), with ship, deliver, cancel and refund behind a confirmation step.
struct OrderPages: Sendable {
    let controller: ConsoleController
    private var dependencies: ConsoleDependencies { controller.dependencies }
    static let pageSize = 25

    func register(on router: Router<AppRequestContext>) {
        router.get("admin/orders") { request, context in try await controller.guarded(request, context, handler: list) }
        router.get("admin/orders/:id") { request, context in try await controller.guarded(request, context, handler: order) }
        router.post("admin/orders/:id/status") { request, context in try await controller.guarded(request, context, handler: changeStatus) }
        router.post("admin/orders/:id/refund") { request, context in try await controller.guarded(request, context, handler: refund) }
    }

    // MARK: List

    private func list(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let query = request.uri.queryParameters
        func text(_ name: String) -> String? {
            query.get(name).map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty || $0.count > 200 ? nil : $0 }
        }
        var filter = ConsoleQueries.OrderFilter()
        var problems: [String] = []
        if let status = text("status") {
            if OrderStatus(rawValue: status) != nil { filter.status = status } else { problems.append("status \(status) is not an order status") }
        }
        let day = DateFormatter()
        day.dateFormat = "yyyy-MM-dd"
        day.timeZone = TimeZone(identifier: "UTC")
        if let from = text("from") { if let date = day.date(from: from) { filter.from = date } else { problems.append("from must be a date (YYYY-MM-DD)") } }
        if let to = text("to") {
            if let date = day.date(from: to) { filter.to = date.addingTimeInterval(86_400) } else { problems.append("to must be a date (YYYY-MM-DD)") }
        }
        filter.email = text("email")
        filter.orderNumber = text("number")
        if let min = text("min_total") {
            if let cents = Self.cents(min) { filter.minTotalCents = cents } else { problems.append("minimum total must be an amount such as 10.00") }
        }
        if let max = text("max_total") {
            if let cents = Self.cents(max) { filter.maxTotalCents = cents } else { problems.append("maximum total must be an amount such as 99.50") }
        }
        let page = ListPage(query, size: Self.pageSize)
        // The live fragments re-read only what they show: the rows, or the heading's count.
        // The whole page reads both in one round trip.
        let fragment = query.get("fragment")
        let (rows, count) = try await dependencies.pool.withConnection { db in
            let queries = ConsoleQueries()
            switch fragment {
            case "rows": return (try await queries.orderRows(filter, size: page.size, offset: page.offset, on: db), (total: 0, more: false))
            case "count": return ([], try await queries.orderCount(filter, offset: page.offset, on: db))
            default:
                let found = try await queries.orderPage(filter, size: page.size, offset: page.offset, on: db)
                return (found.rows, (total: found.total, more: found.more))
            }
        }
        var values = controller.base(viewer, title: "Orders", section: "orders")
        values["rows"] = rows.map(Self.row)
        values["total"] = count.more ? "more than \(count.total)" : "\(count.total)"
        values["empty"] = rows.isEmpty
        values["problems"] = problems
        values["filter"] = [
            "email": filter.email ?? "", "number": filter.orderNumber ?? "", "from": text("from") ?? "", "to": text("to") ?? "",
            "min_total": text("min_total") ?? "", "max_total": text("max_total") ?? "",
        ]
        values["statuses"] = OrderStatus.allCases.map { ["value": $0.rawValue, "selected": $0.rawValue == filter.status] }
        let keep = ListPage.otherParameters(of: request.uri.query)
        // Newest first: the previous page holds newer orders.
        values.addPager(page.pagerValues(path: "/admin/orders", keeping: keep, total: count.total, labels: ("← Newer", "Older →")))
        // The live script re-fetches this page's rows, and the count in the heading, when an
        // order event arrives.
        values["live_rows"] = "/admin/orders?\(keep)page=\(page.number)&fragment=rows"
        values["live_count"] = "/admin/orders?\(keep)page=\(page.number)&fragment=count"
        let template = ["rows": "order-rows", "count": "order-count"][fragment ?? ""] ?? "orders"
        return try controller.pages.page(template, values)
    }

    static func row(_ row: ConsoleQueries.OrderRow) -> [String: Any] {
        [
            "id": row.id.uuidString.lowercased(), "number": row.orderNumber, "status": row.status, "email": row.email,
            "total": ConsoleFormat.money(row.totalCents, row.currency), "created": ConsoleFormat.date(row.createdAt), "flag": row.paymentFlag ?? "",
        ]
    }

    /// "12.50" or "12" as cents; nil when not an amount.
    static func cents(_ text: String) -> Int? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = Int(parts[0]), whole >= 0, whole < 100_000_000 else { return nil }
        guard parts.count == 2 else { return whole * 100 }
        guard (1...2).contains(parts[1].count), let fraction = Int(parts[1]) else { return nil }
        return whole * 100 + (parts[1].count == 1 ? fraction * 10 : fraction)
    }

    // MARK: One order

    private func order(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let id = try context.parameters.requireUUID("id", "order")
        var values = try await details(id, viewer: viewer)
        values.merge(controller.base(viewer, title: "Order \(values["number"] ?? "")", section: "orders")) { _, new in new }
        return try controller.pages.page(request.uri.queryParameters.get("fragment") == "live" ? "order-live" : "order", values)
    }

    /// Everything the order page shows.
    func details(_ id: UUID, viewer: SessionViewer) async throws -> [String: Any] {
        let pool = dependencies.pool
        guard let order = try await pool.withConnection({ try await OrderStore().order(id, visibleTo: nil, on: $0) }),
            let facts = try await ConsoleQueries().facts(of: id, on: pool)
        else { throw APIError.notFound("order") }
        let refunds = try await pool.withConnection { try await PaymentStore().refunds(ofOrder: id, on: $0) }
        let audit = try await AuditStore().entries(objectType: "order", objectId: id.uuidString.lowercased(), on: pool)
        var filter = DeadLetterFilter()
        filter.orderId = id.uuidString
        // The broker may be down: the page still shows everything the database holds.
        let letters = (try? await dependencies.deadLetters.list(filter, limit: 50)) ?? []
        let status = OrderStatus(rawValue: order.status)
        let money = { (cents: Int) in ConsoleFormat.money(cents, order.currency) }
        var values: [String: Any] = [
            "id": id.uuidString.lowercased(), "number": order.orderNumber, "status": order.status, "email": facts.customerEmail,
            "customer_id": facts.customerId.uuidString.lowercased(),
            "created": ConsoleFormat.date(order.createdAt), "payment_method": order.paymentMethod,
            "cancellation_reason": order.cancellationReason ?? "", "flag": order.paymentFlag ?? "",
            "timeline": order.statusHistory.map {
                ["from": $0.fromStatus ?? "", "to": $0.toStatus, "reason": $0.reason ?? "", "at": ConsoleFormat.date($0.changedAt)]
            },
            "reservations": facts.reservations.map { ["sku": $0.sku, "quantity": $0.quantity, "status": $0.status] as [String: Any] },
            "refunds": refunds.map {
                [
                    "amount": money($0.amountCents), "status": $0.status, "reason": $0.reason ?? "", "restock": $0.restock,
                    "created": ConsoleFormat.date($0.createdAt),
                ]
                    as [String: Any]
            },
            "notifications": facts.notifications.map {
                ["channel": $0.channel, "template": $0.template, "recipient": $0.recipient, "status": $0.status, "at": ConsoleFormat.date($0.createdAt)]
            },
            "audit": audit.map {
                [
                    "actor": $0.actorEmail, "actor_id": $0.actorId.uuidString.lowercased(), "action": $0.action, "before": $0.before ?? "",
                    "after": $0.after ?? "", "at": ConsoleFormat.date($0.at),
                ]
            },
            "dead_letters": letters.map {
                ["message_id": $0.messageId, "queue": $0.queue, "type": $0.type ?? "", "error": $0.error, "attempts": $0.attempts] as [String: Any]
            },
            "can_ship": status?.allowedNext.contains(.shipped) ?? false,
            "can_deliver": status?.allowedNext.contains(.delivered) ?? false,
            "can_cancel": status?.allowedNext.contains(.cancelled) ?? false,
            "can_refund": status?.isRefundable ?? false,
        ]
        values.merge(ConsoleFormat.orderBasics(order)) { _, new in new }
        if let payment = facts.payment {
            values["payment"] = [
                "status": payment.status, "provider": payment.provider, "reference": payment.reference ?? "", "amount": money(payment.amountCents),
                "refunded": money(payment.refundedCents), "failure": payment.failureReason ?? "",
            ]
        }
        if let traceparent = facts.traceparent {
            let parts = traceparent.split(separator: "-")
            if parts.count >= 2 {
                let traceId = String(parts[1])
                values["trace_id"] = traceId
                if let template = dependencies.settings.traceURL { values["trace_url"] = template.replacingOccurrences(of: "{trace_id}", with: traceId) }
            }
        }
        return values
    }

    // MARK: Actions (each confirmed first)

    private func changeStatus(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let id = try context.parameters.requireUUID("id", "order")
        guard let action = form["action"], ["SHIPPED", "DELIVERED", "CANCELLED"].contains(action) else {
            throw APIError.invalid([("action", "must be SHIPPED, DELIVERED or CANCELLED")])
        }
        guard form["confirm"] == "yes" else {
            let verb = ["SHIPPED": "Ship", "DELIVERED": "Mark delivered", "CANCELLED": "Cancel"][action]!
            return try confirm(
                viewer, question: "\(verb) order \(try await number(of: id))?", action: "/admin/orders/\(id.uuidString.lowercased())/status",
                fields: [("action", action)], back: "/admin/orders/\(id.uuidString.lowercased())")
        }
        let identity = Identity(userId: viewer.userId, role: viewer.role)
        if action == "CANCELLED" {
            try await dependencies.orders.cancel(id, by: identity, log: context.logger)
        } else {
            try await dependencies.orders.advance(id, to: action, by: identity, log: context.logger)
        }
        return ConsolePages.redirect("/admin/orders/\(id.uuidString.lowercased())")
    }

    private func refund(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let id = try context.parameters.requireUUID("id", "order")
        let reason = form["reason"] ?? ""
        var lines: [(productId: UUID, quantity: Int)] = []
        for (name, value) in form.values where name.hasPrefix("line_") {
            guard let quantity = Int(value.trimmingCharacters(in: .whitespaces)), quantity > 0 else { continue }
            guard let product = UUID(uuidString: String(name.dropFirst(5))) else { throw APIError.invalid([("lines", "unknown line")]) }
            lines.append((product, quantity))
        }
        var amount: Int?
        if let text = form["amount"] {
            guard let cents = Self.cents(text), cents > 0 else { throw APIError.invalid([("amount", "must be an amount such as 12.50")]) }
            amount = cents
        }
        guard (amount == nil) != lines.isEmpty else { throw APIError.invalid([("amount", "give an amount or quantities of lines, not both")]) }
        let restock = form["restock"] == "on" || form["restock"] == "yes"
        guard form["confirm"] == "yes" else {
            var fields: [(String, String)] = [("reason", reason), ("restock", restock ? "yes" : "no")]
            if let text = form["amount"] { fields.append(("amount", text)) }
            for line in lines { fields.append(("line_\(line.productId.uuidString.lowercased())", String(line.quantity))) }
            let what = amount.map { "\(ConsoleFormat.money($0, "")) " } ?? "\(lines.reduce(0) { $0 + $1.quantity }) item(s) "
            return try confirm(
                viewer, question: "Refund \(what)of order \(try await number(of: id))\(restock ? " and restock" : "")?",
                action: "/admin/orders/\(id.uuidString.lowercased())/refund", fields: fields, back: "/admin/orders/\(id.uuidString.lowercased())")
        }
        _ = try await dependencies.orders.requestRefund(
            id, OrderOperations.RefundRequest(amountCents: amount, lines: lines.isEmpty ? nil : lines, reason: reason, restock: restock),
            by: Identity(userId: viewer.userId, role: viewer.role), log: context.logger)
        return ConsolePages.redirect("/admin/orders/\(id.uuidString.lowercased())")
    }

    private func number(of id: UUID) async throws -> String {
        guard let order = try await dependencies.pool.withConnection({ try await OrderStore().order(id, visibleTo: nil, on: $0) }) else {
            throw APIError.notFound("order")
        }
        return order.orderNumber
    }

    /// The confirmation step: the same form again with `confirm=yes`.
    func confirm(_ viewer: SessionViewer, question: String, action: String, fields: [(String, String)], back: String) throws -> Response {
        try controller.confirmPage(viewer, question: question, action: action, fields: fields, back: back)
    }
}

extension ConsoleController {
    /// A page asking to confirm a change: the same form again, with `confirm=yes`.
    func confirmPage(_ viewer: SessionViewer, question: String, action: String, fields: [(String, String)], back: String) throws -> Response {
        var values = base(viewer, title: "Confirm", section: "none")
        values["question"] = question
        values["action"] = action
        values["fields"] = fields.map { ["name": $0.0, "value": $0.1] }
        values["back"] = back
        return try pages.page("confirm", values)
    }
}
