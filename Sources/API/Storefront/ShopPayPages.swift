import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Payments
import Store

/// The pay page of an order placed to be paid in the browser (`PAYMENT_PROVIDER=stripe` with
/// a publishable key): Stripe.js shows Stripe's own card field, confirms a SetupIntent with it
/// and hands the page a `pm_…` id; the page sends that id here, the server confirms the
/// order's PaymentIntent with it (refusing if the order no longer awaits payment), and when
/// the bank asks for 3-D Secure, Stripe.js completes it in the page. The order moves on
/// Stripe's webhook, never on the page's word. The card number goes from the browser to Stripe
/// and never through Emporium; the page is the only one whose policy allows Stripe's origins.
struct ShopPayPages: Sendable {
    let controller: StorefrontController
    private var shop: StorefrontDependencies { controller.shop }

    func register(on router: Router<AppRequestContext>) {
        router.get("orders/:id/pay") { request, context in try await controller.guarded(request, context, signedIn: true, handler: page) }
        router.post("orders/:id/pay/setup") { request, context in try await controller.guarded(request, context, signedIn: true, handler: setup) }
        router.post("orders/:id/pay") { request, context in try await controller.guarded(request, context, signedIn: true, handler: confirm) }
    }

    /// What the customer's browser gets back for a card attempt: the SetupIntent's secret.
    struct SetupAnswer: ResponseEncodable {
        var setupSecret: String
    }

    /// What the customer's browser gets back from a confirm.
    struct ConfirmAnswer: ResponseEncodable {
        /// The PaymentIntent's status, or `declined`.
        var status: String
        /// For `requires_action`: the secret Stripe.js completes 3-D Secure with.
        var clientSecret: String? = nil
        /// For `declined`: why, in the customer's words.
        var message: String? = nil
    }

    private func page(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        let id = try context.parameters.requireUUID("id", "order")
        guard let order = try await shop.pool.withConnection({ try await OrderStore().order(id, visibleTo: viewer.userId, on: $0) }) else {
            throw APIError.notFound("order")
        }
        let orderPage = "/orders/\(id.uuidString.lowercased())"
        guard case .stripe(let key, let script, _) = shop.cards, order.paymentMethod == PaymentIds.manualMethod else {
            return ConsolePages.redirect(orderPage)
        }
        var values = await controller.base(viewer, title: "Pay order \(order.orderNumber)", request: request)
        values.merge([
            "id": id.uuidString.lowercased(), "number": order.orderNumber, "order_url": orderPage,
            "total": ConsoleFormat.money(order.totalCents, order.currency),
        ]) { _, new in new }
        switch OrderStatus(rawValue: order.status) {
        case .pending:
            // The items are being reserved (a second or so): the page reloads itself.
            values["reserving"] = true
            values["refresh"] = 2
        case .awaitingPayment:
            let (intent, reference) = try await shop.payments.openIntent(id, userId: viewer.userId)
            guard reference != nil, intent.status == "requires_payment_method" else {
                values["processing"] = true
                break
            }
            values["card_form"] = ["publishable_key": key, "action": "\(orderPage)/pay"]
            values["stripe_js"] = script.absoluteString
        default:
            return ConsolePages.redirect(orderPage)
        }
        return try controller.pages.page("pay", values, headers: [.cacheControl: "no-store"], policy: shop.cards.payPagePolicy)
    }

    /// A SetupIntent for one card attempt (a fresh one each time, so a card that failed, or
    /// failed 3-D Secure, can be followed by another), for the owner of an order that awaits
    /// its payment.
    private func setup(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        return try await json(request, context) {
            let id = try orderId(context)
            // Opening the intent checks the owner and that the order still awaits its payment.
            let (intent, reference) = try await shop.payments.openIntent(id, userId: viewer.userId)
            guard reference != nil, intent.status == "requires_payment_method" else {
                throw APIError.conflict("this payment is already being processed or finished")
            }
            return SetupAnswer(setupSecret: try await shop.payments.openCardCollection(for: id))
        }
    }

    /// Confirms the order's payment with the `pm_…` the page got from Stripe.js; answers JSON
    /// for the page's script.
    private func confirm(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let viewer else { throw APIError.unauthorized("sign in first") }
        return try await json(request, context) {
            let id = try orderId(context)
            let confirmed = try await shop.payments.confirmCollected(id, userId: viewer.userId, paymentMethod: form["payment_method"] ?? "")
            let answer =
                confirmed.declineCode.map { ConfirmAnswer(status: "declined", message: Self.declined($0)) }
                ?? ConfirmAnswer(status: confirmed.status, clientSecret: confirmed.clientSecret)
            context.logger.info(
                "storefront payment confirmed with a card from Stripe.js", metadata: ["order.id": "\(id)", "payment.status": "\(answer.status)"])
            return answer
        }
    }

    /// The order a script's call names, when the shop takes cards with Stripe.js; a bad id is
    /// a 404 in the script's JSON, like a missing order.
    private func orderId(_ context: AppRequestContext) throws -> UUID {
        guard case .stripe = shop.cards else { throw APIError.notFound("pay page") }
        return try context.parameters.requireUUID("id", "order")
    }

    /// The page script's answer: `body`'s value, or an API error as `{"status": "refused",
    /// "message": …}` with its HTTP status; never cached.
    private func json(_ request: Request, _ context: AppRequestContext, _ body: () async throws -> some ResponseEncodable) async throws -> Response {
        var response: Response
        do {
            response = try await body().response(from: request, context: context)
        } catch let error as APIError {
            let message = ([error.detail] + error.errors.map(\.message)).joined(separator: " · ")
            response = try ConfirmAnswer(status: "refused", message: message).response(from: request, context: context)
            response.status = error.status
        }
        response.headers[.cacheControl] = "no-store"
        return response
    }

    /// A decline in the customer's words.
    static func declined(_ code: String) -> String {
        switch code {
        case "insufficient_funds": "Your card was declined: insufficient funds. Nothing was charged."
        case "expired_card": "Your card has expired. Nothing was charged."
        case "incorrect_cvc": "The card's security code is wrong. Nothing was charged."
        default: "Your card was declined (\(code)). Nothing was charged."
        }
    }
}
