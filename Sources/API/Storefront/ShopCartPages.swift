import Domain
import Foundation
import Hummingbird
import Messaging
import Observability
import Store

/// The cart (change quantities, remove; totals with tax and shipping as the server computes
/// them, price changes explained) and the checkout. The checkout form carries an
/// `Idempotency-Key` made when the page was rendered, so submitting it twice (a double click,
/// a reload) places one order: the second submit is answered with the first one's order.
struct ShopCartPages: Sendable {
    let controller: StorefrontController
    private var shop: StorefrontDependencies { controller.shop }

    func register(on router: Router<AppRequestContext>) {
        router.get("cart") { request, context in try await controller.guarded(request, context, signedIn: true, handler: cart) }
        router.post("cart/items") { request, context in try await controller.guarded(request, context, signedIn: true, handler: add) }
        router.post("cart/items/:id") { request, context in try await controller.guarded(request, context, signedIn: true, handler: change) }
        router.get("checkout") { request, context in try await controller.guarded(request, context, signedIn: true, handler: checkout) }
        router.post("checkout") { request, context in try await controller.guarded(request, context, signedIn: true, handler: place) }
    }

    /// The cart's lines and its quote at the current prices.
    private func quote(_ viewer: SessionViewer) async throws -> (lines: [CartStore.Line], quote: Checkout.Quote) {
        let lines = try await shop.carts.cart(for: viewer.userId).items
        let carts = shop.carts.carts
        let priced = try await shop.pool.withConnection { db in
            _ = try await carts.cartId(for: viewer.userId, on: db)
            return try await carts.pricedLines(ofUser: viewer.userId, on: db)
        }
        return (lines, Checkout.quote(priced, pricing: shop.pricing))
    }

    private func cartValues(_ viewer: SessionViewer, request: Request, title: String) async throws -> [String: Any] {
        var values = await controller.base(viewer, title: title, request: request)
        let (lines, quote) = try await quote(viewer)
        let notes = Dictionary(quote.notes.map { ($0.productId, $0.message) }, uniquingKeysWith: { a, _ in a })
        values["lines"] = lines.map {
            [
                "id": $0.id.uuidString.lowercased(), "product_id": $0.productId.uuidString.lowercased(), "url": ShopURLs.product($0.productId, name: $0.name),
                "name": $0.name, "quantity": $0.quantity,
                "unit": ConsoleFormat.money($0.unitPriceCents, $0.currency), "line": ConsoleFormat.money($0.unitPriceCents * $0.quantity, $0.currency),
                "note": notes[$0.productId] ?? "",
            ] as [String: Any]
        }
        values["empty"] = lines.isEmpty
        values["notes"] = quote.notes.map(\.message)
        if let totals = quote.totals {
            values["totals"] = [
                "subtotal": ConsoleFormat.money(totals.subtotalCents, totals.currency), "tax": ConsoleFormat.money(totals.taxCents, totals.currency),
                "shipping": ConsoleFormat.money(totals.shippingCents, totals.currency), "total": ConsoleFormat.money(totals.totalCents, totals.currency),
                "total_cents": totals.totalCents,
            ]
        }
        return values
    }

    private func cart(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        return try controller.pages.page("cart", try await cartValues(viewer, request: request, title: "Your cart"))
    }

    private func add(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        guard let product = form["product_id"].flatMap(UUID.init(uuidString:)) else { throw APIError.invalid([("product_id", "unknown product")]) }
        guard let quantity = Int(form["quantity"] ?? "1") else { throw APIError.invalid([("quantity", "must be a whole number")]) }
        _ = try await shop.carts.add(.init(productId: product, quantity: quantity), userId: viewer.userId)
        return ConsolePages.redirect(form["back"] == "cart" ? "/cart" : "/products/\(product.uuidString.lowercased())?added=1")
    }

    /// Sets a line's quantity, or removes it (`remove`, or quantity 0).
    private func change(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        let item = try context.parameters.requireUUID("id", "cart item")
        let quantity = Int(form["quantity"] ?? "") ?? -1
        if form["remove"] != nil || quantity == 0 {
            try await shop.carts.remove(item, userId: viewer.userId)
        } else {
            _ = try await shop.carts.update(item, to: quantity, userId: viewer.userId)
        }
        return ConsolePages.redirect("/cart")
    }

    private func checkoutValues(_ viewer: SessionViewer, request: Request, entered: [String: String] = [:], problem: String? = nil) async throws -> [String:
        Any]
    {
        var values = try await cartValues(viewer, request: request, title: "Checkout")
        let saved = try await UserStore().addresses(of: viewer.userId, on: shop.pool)
        values["addresses"] = saved.enumerated().map { index, address in
            [
                "id": address.id.uuidString.lowercased(),
                "text": [address.line1, address.line2 ?? "", "\(address.postalCode) \(address.city)", address.country]
                    .filter { !$0.isEmpty }.joined(separator: ", "),
                "checked": entered["address"].map { $0 == address.id.uuidString.lowercased() } ?? (address.isDefault || index == 0),
            ] as [String: Any]
        }
        values["new_address_checked"] = saved.isEmpty || entered["address"] == "new"
        values["entered"] = entered
        // One key per rendering of the form: every submit of this form is the same attempt.
        values["idempotency_key"] = entered["idempotency_key"] ?? UUID().uuidString.lowercased()
        switch shop.cards {
        case .testCards: values["test_cards"] = true
        case .stripe: values["stripe_cards"] = true
        case .savedMethod: values["saved_method"] = true
        }
        values["problem"] = problem as Any
        return values
    }

    private func checkout(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        let values = try await checkoutValues(viewer, request: request)
        if values["empty"] as? Bool == true { return ConsolePages.redirect("/cart") }
        return try controller.pages.page("checkout", values)
    }

    private func place(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        let entered = Dictionary(form.values, uniquingKeysWith: { a, _ in a })
        guard let key = form["idempotency_key"], UUID(uuidString: key) != nil else {
            throw APIError.invalid([("idempotency_key", "missing; reload the checkout page")])
        }
        var address: [String: Any]
        if let chosen = form["address"], chosen != "new" {
            guard let saved = try await UserStore().addresses(of: viewer.userId, on: shop.pool).first(where: { $0.id.uuidString.lowercased() == chosen }) else {
                throw APIError.invalid([("address", "choose one of your addresses")])
            }
            address = ["line1": saved.line1, "city": saved.city, "postal_code": saved.postalCode, "country": saved.country]
            if let line2 = saved.line2 { address["line2"] = line2 }
        } else {
            address = [
                "line1": form["line1"] ?? "", "city": form["city"] ?? "", "postal_code": form["postal_code"] ?? "",
                "country": (form["country"] ?? "").uppercased(),
            ]
            if let line2 = form["line2"] { address["line2"] = line2 }
        }
        var body: [String: Any] = ["payment_method": form["payment_method"] ?? "", "shipping_address": address]
        if let total = form["expected_total_cents"].flatMap(Int.init) { body["expected_total_cents"] = total }
        // The body as the API would receive it: its hash tells a second submit of this form
        // (the same order again: answered with the first) from a changed one (refused).
        let raw = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        let input = try EmporiumJSON.decoder().decode(OrdersController.PlaceOrder.self, from: raw)
        let traceparent = EmporiumTracing.currentTraceparent() ?? TraceContext.new()
        var attempt = 0
        while true {
            do {
                let placed = try await shop.orders.place(
                    userId: viewer.userId, key: key, input: input, body: Array(raw), traceparent: traceparent, log: context.logger)
                guard let object = try JSONSerialization.jsonObject(with: Data(placed.body.utf8)) as? [String: Any], let id = object["id"] as? String else {
                    throw APIError(status: .internalServerError, detail: "the order was placed but its answer could not be read; see your orders")
                }
                // A card taken in the browser is asked for once the items are reserved.
                let paysInBrowser = input.paymentMethod == PaymentIds.manualMethod
                return ConsolePages.redirect("/orders/\(id.lowercased())" + (paysInBrowser ? "/pay" : ""))
            } catch let error as APIError where error.status == .conflict && error.detail.contains("still being processed") && attempt < 25 {
                // The first submit of this form is being placed right now: wait for its answer.
                attempt += 1
                try await Task.sleep(for: .milliseconds(200))
            } catch let error as APIError where [.badRequest, .conflict, .unprocessableContent].contains(error.status) {
                let fields = error.errors.map { $0.message }
                let problem = ([error.detail] + fields).joined(separator: " · ")
                var values = try await checkoutValues(
                    viewer, request: request, entered: entered.merging(["idempotency_key": UUID().uuidString.lowercased()]) { _, new in new }, problem: problem)
                values["title"] = "Checkout"
                return try controller.pages.page("checkout", values, status: error.status)
            }
        }
    }
}
