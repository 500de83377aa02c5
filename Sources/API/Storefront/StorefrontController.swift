import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Messaging
import Payments
import Postgres
import Store

/// The storefront at `/`: server-rendered pages for customers (browse, search, product and
/// reviews, sign-up and sign-in, cart, checkout, orders with live status). Plain forms that
/// work without JavaScript; a little script of our own only for the live order status. Every
/// action calls the API's own code (``CartController``, ``OrdersController``,
/// ``OrderOperations``, ``AuthController``, ``ReviewsController``), so the rules are the API's.
struct StorefrontController: Sendable {
    let pages: ConsolePages
    let sessions: WebSessions
    let signIn: PasswordSignIn
    let shop: StorefrontDependencies

    /// A handler with its viewer (nil when signed out) and, for a `POST`, the form's fields.
    typealias Handler = @Sendable (_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response

    func register(on router: Router<AppRequestContext>) {
        router.get("shop/static/:file") { _, context in try asset(context) }
        AccountForms(controller: self).register(on: router)
        ShopCatalogPages(controller: self).register(on: router)
        ShopCartPages(controller: self).register(on: router)
        ShopOrderPages(controller: self).register(on: router)
        ShopPayPages(controller: self).register(on: router)
        ShopSitemap(controller: self).register(on: router)
    }

    /// Runs `handler` with the viewer, if any. `signedIn` pages send a signed-out visitor to
    /// sign in (and back afterwards). A `POST` needs the session's CSRF token, or before
    /// sign-in the form cookie's (double submit). An API error becomes a page with its status
    /// and detail.
    func guarded(_ request: Request, _ context: AppRequestContext, signedIn: Bool = false, handler: Handler) async throws -> Response {
        let viewer = try await sessions.viewer(request)
        if signedIn, viewer == nil {
            // Back where the visitor was: the page asked for, or the product they tried to add.
            var back = request.uri.path
            if request.method == .post {
                let form = try await FormFields.read(request)
                back = form["product_id"].flatMap(UUID.init(uuidString:)).map { "/products/\($0.uuidString.lowercased())" } ?? "/cart"
            }
            return ConsolePages.redirect("/signin?next=" + (back.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""))
        }
        var context = context
        if let viewer {
            context.identity = viewer.identity
            context.logger[metadataKey: "user.id"] = "\(viewer.userId)"
        }
        do {
            if request.method == .post {
                let form = try await FormFields.read(request)
                let expected = viewer?.csrfToken ?? WebSessions.cookieValue(sessions.kind.formCookieName, in: request)
                guard let token = form["csrf"], let expected, WebSessions.same(token, expected) else {
                    context.logger.notice("storefront form refused: missing or wrong CSRF token")
                    return try errorPage(status: .forbidden, detail: "This form has expired. Go back, reload the page and try again.", viewer: viewer)
                }
                return try await handler(request, context, viewer, form)
            }
            return try await handler(request, context, viewer, FormFields(""))
        } catch let error as APIError {
            return try errorPage(status: error.status, detail: error.detail, viewer: viewer)
        }
    }

    /// What every page's layout needs: the viewer, their CSRF token, the cart's size, the
    /// search box's text.
    func base(_ viewer: SessionViewer?, title: String, request: Request? = nil) async -> [String: Any] {
        var values: [String: Any] = ["title": title, "q": request?.uri.queryParameters.get("q").map { String($0) } ?? ""]
        if let viewer {
            values["viewer"] = true
            values["csrf"] = viewer.csrfToken
            let count = (try? await shop.carts.cart(for: viewer.userId).items.reduce(0) { $0 + $1.quantity }) ?? 0
            values["cart_count"] = count
        }
        return values
    }

    /// The shop's address for absolute links (the sitemap, canonical and sharing links):
    /// `STOREFRONT_PUBLIC_URL`, else the request's `Host` when it is a plain host name (never
    /// anything a header could smuggle into a link), else the loopback default.
    func publicBase(_ request: Request) -> String {
        if let url = shop.publicURL { return url.absoluteString }
        let host = request.head.authority ?? ""
        let plain = !host.isEmpty && host.count <= 255 && host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || ".-:[]".contains($0)) }
        return (sessions.secure(request) ? "https://" : "http://") + (plain ? host : "localhost")
    }

    func errorPage(status: HTTPResponse.Status, detail: String, viewer: SessionViewer?) throws -> Response {
        var values: [String: Any] = ["title": "\(status.code) \(status.reasonPhrase)", "status": status.code, "detail": detail]
        if let viewer {
            values["viewer"] = true
            values["csrf"] = viewer.csrfToken
        }
        return try pages.page("error", values, status: status)
    }

    /// A form token for a signed-out visitor (sign-in, sign-up): the value for the form and the
    /// cookie that carries the same value.
    func formToken(_ request: Request) -> (token: String, cookie: String) {
        let token = WebSessions.randomToken()
        return (token, sessions.cookie(sessions.kind.formCookieName, value: token, maxAge: 3_600, secure: sessions.secure(request)))
    }

    /// Only a path of this shop is a place to go after sign-in (no open redirect).
    static func safeNext(_ next: String?) -> String? {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.contains("\\"), !next.hasPrefix("/admin"), !next.hasPrefix("/api") else {
            return nil
        }
        return next
    }

    private func asset(_ context: AppRequestContext) throws -> Response {
        guard let name = context.parameters.get("file"), let asset = pages.assets[name] else { throw APIError.notFound("file") }
        return Response(
            status: .ok, headers: [.contentType: asset.type, .cacheControl: "public, max-age=300"], body: .init(byteBuffer: ByteBuffer(string: asset.body)))
    }
}

/// What the storefront's pages act through: the API's own controllers and stores.
struct StorefrontDependencies: Sendable {
    let pool: PostgresPool
    let carts: CartController
    let orders: OrdersController
    let operations: OrderOperations
    let auth: AuthController
    let reviews: ReviewsController
    let feed: EventFanOut
    let pricing: Pricing
    /// The client-confirmed payments of the pay page (the API's own code).
    let payments: PaymentsController
    /// How the checkout takes a card.
    let cards: ShopCards
    /// `STOREFRONT_PUBLIC_URL`: the shop's address for absolute links.
    let publicURL: URL?
}

/// How the storefront's checkout takes a card.
enum ShopCards: Sendable {
    /// The fake provider's test cards (`PAYMENT_PROVIDER=fake`): no real money moves.
    case testCards
    /// Stripe.js on the order's pay page (`PAYMENT_PROVIDER=stripe` with
    /// `STRIPE_PUBLISHABLE_KEY`): the order is placed to be paid in the browser, then the card
    /// goes from Stripe's own field to Stripe, never through Emporium.
    case stripe(publishableKey: String, script: URL, apiBase: URL)
    /// Stripe without a publishable key: a saved payment method id (`pm_…`).
    case savedMethod

    /// From the API's payment settings.
    init(_ settings: PaymentSettings) {
        guard let stripe = settings.stripe else {
            self = .testCards
            return
        }
        if let key = stripe.publishableKey, let script = URL(string: stripe.jsURL), let api = URL(string: stripe.apiBase) {
            self = .stripe(publishableKey: key, script: script, apiBase: api)
        } else {
            self = .savedMethod
        }
    }

    /// The pay page's Content-Security-Policy: the storefront's, plus Stripe.js's origin for
    /// its script and frames and Stripe's API for its calls (what Stripe documents), on that
    /// page only.
    var payPagePolicy: String? {
        guard case .stripe(_, let script, let api) = self, let scriptOrigin = Self.origin(script), let apiOrigin = Self.origin(api) else { return nil }
        return
            "default-src 'none'; script-src 'self' \(scriptOrigin); style-src 'self'; img-src 'self' https: data:; "
            + "connect-src 'self' \(scriptOrigin) \(apiOrigin); frame-src \(scriptOrigin) https://hooks.stripe.com; form-action 'self'; "
            + "frame-ancestors 'none'; base-uri 'none'"
    }

    /// `scheme://host[:port]` of `url`.
    static func origin(_ url: URL) -> String? {
        guard let scheme = url.scheme, let host = url.host else { return nil }
        return "\(scheme)://\(host)" + (url.port.map { ":\($0)" } ?? "")
    }
}
